#!/usr/bin/env python3
"""Scripts torchvision 0.14 classification models for prunelab (random init, num_classes set).

Each model is wrapped so it takes [N, C, S, S] input and returns logits (GoogLeNet and
Inception v3 return named tuples when scripted; the wrapper returns .logits).

  python3 bench/torchvision_models.py --out DIR [--models resnet18,mobilenet_v2 | --all]
      [--classes 10] [--channels 3] [--image 32]

Prints one line per model: name, input shape, parameters, file size; or why it was skipped.
The image size is raised per model where the architecture needs more (alexnet 64,
inception_v3 80); ViTs are built for the given size (image_size=S rounded to their patch).
"""
import argparse
import json
import os
import sys
import time

import torch
import torchvision
from torchvision import models

MIN_IMAGE = {"alexnet": 64, "inception_v3": 80, "maxvit_t": 224}


class Plain(torch.nn.Module):
    def __init__(self, m, channels: int):
        super().__init__()
        self.m = m
        self.channels = channels

    def forward(self, x):
        if x.size(1) != 3:
            x = x.expand(-1, 3, -1, -1) if x.size(1) == 1 else x
        return self.m(x)


class TupleOut(Plain):
    def forward(self, x):
        if x.size(1) != 3:
            x = x.expand(-1, 3, -1, -1) if x.size(1) == 1 else x
        return self.m(x)[0]


def all_names():
    return sorted(models.list_models(module=models))


def build(name, classes, image):
    kwargs = {"num_classes": classes}
    if name.startswith("vit_"):
        patch = int(name.split("_")[-1])
        image = max(patch, (image // patch) * patch)
        kwargs["image_size"] = image
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = True
    image = max(image, MIN_IMAGE.get(name, 0))
    m = models.get_model(name, weights=None, **kwargs)
    randomize_zero_init(m)
    return m, image


def randomize_zero_init(m):
    """Some constructors start layers at zero or near it (ViT's head, ConvNeXt's layer scale
    of 1e-6): the model's output then hardly depends on the layers pruned, and no check of
    a pruned model could fail. Give those tensors random values, as training would."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() >= 2 and p.abs().max() == 0:
                p.normal_(0, 0.02)
            elif "layer_scale" in name:
                p.uniform_(0.5, 1.0)


def calibrate_batch_norm(m, channels, image):
    """Running statistics as a trained model has them (from its own activations), not the
    initial mean 0 / variance 1: with those, deep random networks (EfficientNet) compute an
    output of about zero, which no check can compare with."""
    bns = [b for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative average over the calibration batches
    m.train()
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(8, 3, image, image)
            m(x)
    for b, mom in zip(bns, saved):
        b.momentum = mom


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--max-params", type=float, default=0, help="skip models above this many million parameters")
    ap.add_argument("--manifest", default="", help="write a JSON manifest of the scripted models here")
    a = ap.parse_args()
    names = all_names() if a.all else [n for n in a.models.split(",") if n]
    if not names:
        sys.exit("torchvision_models: give --models a,b or --all")
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    manifest = []
    for name in names:
        t0 = time.time()
        entry = {"name": name}
        try:
            m, image = build(name, a.classes, a.image)
            params = sum(p.numel() for p in m.parameters())
            entry["params"] = params
            if a.max_params and params > a.max_params * 1e6:
                entry["skipped"] = "%.0f M parameters is over --max-params %.0f M" % (params / 1e6, a.max_params)
                print("%-22s skipped: %s" % (name, entry["skipped"]), flush=True)
                manifest.append(entry)
                continue
            calibrate_batch_norm(m, a.channels, image)
            m.eval()
            x = torch.randn(2, a.channels, image, image)
            wrap_cls = TupleOut if name in ("googlenet", "inception_v3") else Plain
            w = wrap_cls(m, a.channels).eval()
            s = torch.jit.script(w)
            with torch.no_grad():
                y = s(x)
            assert tuple(y.shape) == (2, a.classes), "output shape %s" % (tuple(y.shape),)
            path = os.path.join(a.out, name + ".pt")
            s.save(path)
            entry.update(path=path, input_shape=[a.channels, image, image], bytes=os.path.getsize(path))
            print("%-22s [%d, %d, %d]  %9.2f M params  %8.1f MB  %.1f s" %
                  (name, a.channels, image, image, params / 1e6, entry["bytes"] / 1e6, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on with the next model
            entry["skipped"] = "could not script: %s" % str(e).splitlines()[0][:200]
            print("%-22s skipped: %s" % (name, entry["skipped"]), flush=True)
        manifest.append(entry)
    if a.manifest:
        with open(a.manifest, "w") as f:
            json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
