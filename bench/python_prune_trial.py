"""The same pruning trial as bench/prune_trial_vs_python, written the way a practitioner would
in Python with torch.nn.utils.prune: load the baseline's weights into an nn.Module CNN,
L1-unstructured 50 % on conv1, conv2, fc1, fc2, fine-tune one epoch (SGD momentum 0.9,
cosine decay, batch 64, seeded shuffling), evaluate on the full test set.
With a sixth argument `bf16` the fine-tuning runs as PyTorch's documentation suggests for
this CPU: torch.autocast("cpu", bfloat16) with channels-last model and inputs.
Prints one JSON object: seconds (prune + fine-tune + evaluate), accuracy, sparsity."""
import gzip
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 49, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def main():
    baseline, data_dir, threads, epochs, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    bf16 = len(sys.argv) > 6 and sys.argv[6] == "bf16"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    norm = lambda t: (t.float() / 255.0 - 0.2860) / 0.3530
    xtr = norm(idx(f"{data_dir}/train-images-idx3-ubyte.gz")).unsqueeze(1)
    ytr = idx(f"{data_dir}/train-labels-idx1-ubyte.gz").long()
    xte = norm(idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")).unsqueeze(1)
    yte = idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz").long()
    src = dict(torch.jit.load(baseline).named_parameters())
    src.update(dict(torch.jit.load(baseline).named_buffers()))
    m = Cnn()
    names = {"conv1": "conv1", "conv2": "conv2", "fc1": "fc1", "fc2": "fc2", "bn1": "bn1", "bn2": "bn2"}
    with torch.no_grad():
        for mod in ("conv1", "conv2", "fc1", "fc2"):
            getattr(m, mod).weight.copy_(src[f"{names[mod]}_w"])
            getattr(m, mod).bias.copy_(src[f"{names[mod]}_b"])
        for bn in ("bn1", "bn2"):
            b = getattr(m, bn)
            b.weight.copy_(src[f"{bn}_w"]); b.bias.copy_(src[f"{bn}_b"])
            b.running_mean.copy_(src[f"{bn}_mean"]); b.running_var.copy_(src[f"{bn}_var"])

    t0 = time.perf_counter()
    for mod in (m.conv1, m.conv2, m.fc1, m.fc2):
        prune.l1_unstructured(mod, "weight", amount=0.5)
    if bf16:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9)
    n, bs = xtr.shape[0], 64
    steps_per_epoch = (n + bs - 1) // bs
    total = max(1, math.ceil(steps_per_epoch * epochs))
    g = torch.Generator().manual_seed(43)
    step = 0
    m.train()
    while step < total:
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, bs):
            if step >= total:
                break
            i = perm[s:s + bs]
            x = xtr[i].contiguous(memory_format=torch.channels_last) if bf16 else xtr[i]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(m(x).float(), ytr[i])
            for group in opt.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    for mod in (m.conv1, m.conv2, m.fc1, m.fc2):
        prune.remove(mod, "weight")
    m = m.to(memory_format=torch.contiguous_format)
    m.eval()
    with torch.no_grad():
        pred = torch.cat([m(xte[i:i + 1000]).argmax(1) for i in range(0, xte.shape[0], 1000)])
    seconds = time.perf_counter() - t0
    acc = (pred == yte).float().mean().item()
    w = [m.conv1.weight, m.conv2.weight, m.fc1.weight, m.fc2.weight]
    sparsity = 1 - sum(int((t != 0).sum()) for t in w) / sum(t.numel() for t in w)
    print(json.dumps({"seconds": seconds, "accuracy": acc, "sparsity": sparsity, "torch": torch.__version__}))


main()
