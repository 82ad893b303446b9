"""Independent check of an exported variant: Python's torch.jit.load opens model.pt, runs it on
the Fashion-MNIST test set preprocessed as its model card says, and must reach the accuracy
prunelab recorded. With a fourth argument `raw` the model was exported with
--fold-preprocessing: it is given the raw uint8 pixels instead (and the same images as RGB,
which it must turn back into gray). Exit 0 on success, 1 on a mismatch, 77 when torch is not
installed."""
import gzip
import json
import sys

try:
    import torch
except ImportError:
    print("python3-torch is not installed: skipping (cluster/install-deps.sh installs it)")
    sys.exit(77)


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def main():
    model_dir, data_dir, subset = sys.argv[1], sys.argv[2], int(sys.argv[3])
    raw = len(sys.argv) > 4 and sys.argv[4] == "raw"
    card = json.load(open(f"{model_dir}/model_card.json"))
    m = torch.jit.load(f"{model_dir}/model.pt")
    m.eval()
    images = idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")
    labels = idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz").long()
    if subset:
        images, labels = images[:subset], labels[:subset]
    shape = [s if s > 0 else images.shape[0] for s in card["input"]["shape"]]
    if raw:
        x = images.reshape(shape)  # uint8 pixels as they are
    else:
        x = ((images.float() / 255.0 - 0.2860) / 0.3530).reshape(shape)
    with torch.no_grad():
        pred = torch.cat([m(x[i:i + 1000]).argmax(1) for i in range(0, x.shape[0], 1000)])
        if raw:
            rgb = x.expand(-1, 3, -1, -1)
            pred_rgb = torch.cat([m(rgb[i:i + 1000]).argmax(1) for i in range(0, x.shape[0], 1000)])
            if not torch.equal(pred, pred_rgb):
                print("the folded model predicts differently for the same images given as RGB")
                sys.exit(1)
    acc = (pred == labels).float().mean().item()
    want = card["accuracy"]["final"]
    print(json.dumps({"python_accuracy": acc, "recorded_accuracy": want, "torch": torch.__version__}))
    # One sample of slack for float summation order between LibTorch builds.
    sys.exit(0 if abs(acc - want) <= 1.0 / len(labels) + 1e-9 else 1)


main()
