#!/usr/bin/env python3
"""Converts a prunelab TorchScript variant to ONNX (used by `prunelab export --format onnx`).

LibTorch's C++ API has no ONNX exporter; PyTorch's is torch.onnx, in python3-torch. The
module (prunelab-onnx has specialized it to its input shape, so shape checks leave no
control flow) is exported in eval mode with a dynamic batch axis, then checked with
onnx.checker.

  python3 worker/onnx_export.py --in model.pt --out model.onnx --input-shape 1,28,28 [--opset 13]

Prints one JSON line: {"opset": 13, "nodes": N, "ops": {...}}; on failure a line on stderr
naming the reason, exit 1.
"""
import argparse
import collections
import json
import sys
import warnings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--input-shape", required=True)
    ap.add_argument("--opset", type=int, default=13)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("onnx export: python3-torch is not installed (cluster/install-deps.sh installs it)", file=sys.stderr)
        return 1
    try:
        import onnx
    except ImportError:
        print("onnx export: python3-onnx is not installed (cluster/install-deps.sh installs it)", file=sys.stderr)
        return 1
    shape = [int(s) for s in a.input_shape.split(",") if s]

    def first_line(e):
        msg = str(e).strip().splitlines()
        return (msg[0] if msg else type(e).__name__)[:600]

    def export(module, x):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), a.out, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=a.opset)
        return onnx.load(a.out)

    try:
        m = torch.jit.load(a.src).eval()
        model = export(m, torch.randn([2] + shape))
        onnx.checker.check_model(model)
    except Exception as e:  # the exporter's or the checker's own words
        print("onnx export: " + first_line(e), file=sys.stderr)
        return 1
    ops = collections.Counter(n.op_type for n in model.graph.node)
    print(json.dumps({"opset": a.opset, "nodes": len(model.graph.node), "ops": dict(ops),
                      "torch": torch.__version__, "onnx": onnx.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
