#!/usr/bin/env python3
"""Wanda's masks and SparseGPT's weights from the papers, independently of prunelab (Sun et al.
2023, Algorithm 1; Frantar & Alistarh 2023, Algorithm 1), run as the papers run them: layer by
layer, each layer's inputs taken from the model with the layers before it already pruned.
Wanda: score S_ij = |W_ij| * ||X_j||_2 over every calibration token; within each output row
the lowest-scoring half is removed (unstructured 50 %), or in every group of 4 consecutive
inputs of a row the 2 lowest (2:4). Writes OUT/model.pt (a scripted two-layer MLP on token
features, [B, T, 16] -> [B, T, 8]), OUT/calibration.f32 ([64, 5, 16] float32), OUT/shape.txt,
OUT/<layer>.<pattern>.u8 (Wanda, 1 = kept) and OUT/<layer>.sparsegpt.<pattern>.{f64,u8}
for layers 0 and 2."""
import copy
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


def layer_input(m, i):
    """The input of layer i over every calibration token, [tokens, in], with m as it is now."""
    seen = {}
    hook = m[i].register_forward_hook(lambda mod, inp, o: seen.__setitem__("x", inp[0]))
    with torch.no_grad():
        m(x)
    hook.remove()
    return seen["x"].reshape(-1, m[i].weight.shape[1])


def wanda_mask(w, feats, n, m):
    score = w.abs() * feats.double().pow(2).sum(0).sqrt().float().reshape(1, -1)
    if m == 0:  # per output row, the lowest half by score
        keep = torch.ones_like(w)
        order = torch.sort(score, dim=1, stable=True).indices
        keep.scatter_(1, order[:, :int(round(0.5 * w.shape[1]))], 0.0)
        return keep
    groups = score.reshape(w.shape[0], -1, m)  # in each group of m inputs of a row, the m - n lowest
    low = torch.sort(groups, dim=2, stable=True).indices[:, :, :m - n]
    return torch.ones_like(groups).scatter_(2, low, 0.0).reshape(w.shape)


def sparsegpt(W, X, sparsity, prunen=0, prunem=0, blocksize=8, percdamp=0.01):
    """SparseGPT, float64: H = 2 X^T X; dead inputs get H_cc = 1 and zero weights; H dampened by
    percdamp of its mean diagonal; the upper Cholesky factor of H^-1; per block of columns the
    mask from w^2 / [H^-1]_cc^2 (the `sparsity` share of the block, or per row the prunen lowest
    of every prunem), each pruned weight's error spread over the later columns."""
    W = W.double().clone()
    H = 2 * X.T @ X
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H = H + percdamp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    mask = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        if prunen == 0:
            tmp = W1 ** 2 / torch.diag(Hinv1).reshape(1, -1) ** 2
            k = int(tmp.numel() * sparsity)
            if k > 0:
                mask1 = tmp <= torch.sort(tmp.flatten())[0][k - 1]
        for i in range(i2 - i1):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prunen and i % prunem == 0:
                tmp = W1[:, i:i + prunem] ** 2 / torch.diag(Hinv1)[i:i + prunem].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        mask[:, i1:i2] = mask1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W, mask


for name, (n, m) in {"unstructured": (0, 0), "2of4": (2, 4)}.items():
    wanda = copy.deepcopy(model)
    sgpt = copy.deepcopy(model)
    for i in (0, 2):
        with torch.no_grad():
            keep = wanda_mask(wanda[i].weight, layer_input(wanda, i), n, m)
            keep.to(torch.uint8).numpy().tofile(os.path.join(out, f"{i}.{name}.u8"))
            wanda[i].weight.mul_(keep)  # pruned before the next layer is calibrated
            W, pruned = sparsegpt(sgpt[i].weight.detach(), layer_input(sgpt, i).double(), 0.5, m - n if m else 0, m)
            W.numpy().astype("float64").tofile(os.path.join(out, f"{i}.sparsegpt.{name}.f64"))
            (~pruned).to(torch.uint8).numpy().tofile(os.path.join(out, f"{i}.sparsegpt.{name}.u8"))
            sgpt[i].weight.copy_(W.float())  # reconstructed before the next layer is calibrated
print("ok")
