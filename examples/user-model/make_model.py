"""Writes examples/user-model/model.pt: a user's own network saved with torch.jit.script, the
way a practitioner hands prunelab a model. Needs python3-torch (cluster/install-deps.sh).
Run: /usr/bin/python3 examples/user-model/make_model.py [OUT.pt]"""
import os
import sys

import torch
import torch.nn as nn


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(48 * 7 * 7, 96), nn.ReLU(), nn.Dropout(0.1),
                                        nn.Linear(96, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


torch.manual_seed(0)
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.pt")
torch.jit.script(UserNet()).save(path)
print(f"wrote {path}")
