#!/usr/bin/python3
"""Evaluation data made from Fashion-MNIST, as npy datasets prunelab evaluates.

  clean/      the test set as it is (what the release was measured on)
  fresh/      unseen images of the same distribution: the last 10,000 training images (no
              spec here trains on more than the first 50,000), as a test split
  shifted/    the test set changed the ways deployed inputs drift: brighter and lower
              contrast (a new camera), rotated up to +-20 degrees (new mounting), and class
              imbalance (classes 5-9 kept at 10 %)
  brightness/, rotation/, imbalance/   each change on its own

Each directory holds test_images.npy (N x 28 x 28 uint8) and test_labels.npy, plus the same
change applied to the training set (train_*.npy) so a resweep on it can train.
Usage: make_data.py OUT_DIR [--fashion-mnist DIR] [--test-subset N] [--train-subset N] [--seed S]
"""
import argparse
import gzip
import os

import numpy as np


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=offset)


def load(root, split, subset):
    prefix = "t10k" if split == "test" else "train"
    images = read_idx(os.path.join(root, prefix + "-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    labels = read_idx(os.path.join(root, prefix + "-labels-idx1-ubyte.gz"), 8).astype(np.int64)
    if subset:
        images, labels = images[:subset], labels[:subset]
    return images.copy(), labels.copy()


def brighter(images):
    # A brighter, washed-out sensor: x' = 0.7 x + 50 (less contrast, higher mean).
    return np.clip(images.astype(np.float32) * 0.7 + 50, 0, 255).astype(np.uint8)


def rotate(images, rng, max_degrees=20):
    # Nearest-neighbour rotation about the centre by a random angle per image.
    out = np.zeros_like(images)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32) - 13.5
    for i, img in enumerate(images):
        a = np.deg2rad(rng.uniform(-max_degrees, max_degrees))
        sx = np.rint(np.cos(a) * xx + np.sin(a) * yy + 13.5).astype(int)
        sy = np.rint(-np.sin(a) * xx + np.cos(a) * yy + 13.5).astype(int)
        ok = (sx >= 0) & (sx < 28) & (sy >= 0) & (sy < 28)
        out[i][ok] = img[sy[ok], sx[ok]]
    return out


def imbalance(images, labels, rng, keep=0.1):
    # Classes 5..9 (sandal, shirt, sneaker, bag, ankle boot) become rare.
    rare = labels >= 5
    chosen = ~rare | (rng.random(len(labels)) < keep)
    return images[chosen], labels[chosen]


def save(out, name, split, images, labels):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, split + "_images.npy"), images)
    np.save(os.path.join(d, split + "_labels.npy"), labels)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--fashion-mnist", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--test-subset", type=int, default=0)
    p.add_argument("--train-subset", type=int, default=20000)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    for split, subset in (("test", a.test_subset), ("train", a.train_subset)):
        rng = np.random.default_rng(a.seed)
        images, labels = load(a.fashion_mnist, split, subset)
        save(a.out, "clean", split, images, labels)
        save(a.out, "brightness", split, brighter(images), labels)
        save(a.out, "rotation", split, rotate(images, rng), labels)
        save(a.out, "imbalance", split, *imbalance(images, labels, rng))
        si, sl = imbalance(rotate(brighter(images), rng), labels, rng)
        save(a.out, "shifted", split, si, sl)
    fi, fl = load(a.fashion_mnist, "train", 0)
    n = a.test_subset or 10000
    save(a.out, "fresh", "test", fi[-n:], fl[-n:])
    for name in ("clean", "fresh", "shifted", "brightness", "rotation", "imbalance"):
        n = len(np.load(os.path.join(a.out, name, "test_labels.npy")))
        print("%-11s %6d test samples  %s" % (name, n, os.path.join(a.out, name)))


if __name__ == "__main__":
    main()
