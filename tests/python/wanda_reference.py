#!/usr/bin/env python3
"""Wanda's masks from the paper, independently of prunelab (Sun et al. 2023, Algorithm 1):
score S_ij = |W_ij| * ||X_j||_2 with X the layer's input over every calibration token; within
each output row the lowest-scoring half is removed (unstructured 50 %), or in every group of 4
consecutive inputs of a row the 2 lowest (2:4). Writes OUT/model.pt (a scripted two-layer
MLP on token features, [B, T, 16] -> [B, T, 8]), OUT/calibration.f32 ([64, 5, 16] float32),
OUT/shape.txt, and OUT/<layer>.<pattern>.u8 (1 = kept) for layers 0 and 2."""
import os
import sys

import torch

out = sys.argv[1]
torch.manual_seed(11)
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
model.eval()
x = torch.randn(64, 5, 16) * torch.linspace(0.1, 3.0, 16)  # features on different scales
torch.jit.script(model).save(os.path.join(out, "model.pt"))
x.numpy().astype("float32").tofile(os.path.join(out, "calibration.f32"))
with open(os.path.join(out, "shape.txt"), "w") as f:
    f.write(" ".join(str(s) for s in x.shape))

inputs = {}
hooks = [model[i].register_forward_hook(lambda m, inp, o, i=i: inputs.__setitem__(i, inp[0])) for i in (0, 2)]
with torch.no_grad():
    model(x)
for h in hooks:
    h.remove()

for i in (0, 2):
    w = model[i].weight.detach()
    feats = inputs[i].reshape(-1, w.shape[1]).double()
    norm = feats.pow(2).sum(0).sqrt().float()
    score = w.abs() * norm.reshape(1, -1)
    # Unstructured 50 %: per output row, the lowest half by score.
    keep = torch.ones_like(w)
    k = int(round(0.5 * w.shape[1]))
    order = torch.sort(score, dim=1, stable=True).indices
    keep.scatter_(1, order[:, :k], 0.0)
    keep.to(torch.uint8).numpy().tofile(os.path.join(out, f"{i}.unstructured.u8"))
    # 2:4: in each group of 4 inputs of a row, the 2 lowest.
    groups = score.reshape(w.shape[0], -1, 4)
    low = torch.sort(groups, dim=2, stable=True).indices[:, :, :2]
    nm = torch.ones_like(groups).scatter_(2, low, 0.0).reshape(w.shape)
    nm.to(torch.uint8).numpy().tofile(os.path.join(out, f"{i}.2of4.u8"))
print("ok")
