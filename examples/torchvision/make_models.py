"""Writes examples/torchvision/resnet18.pt and mobilenet_v2.pt: torchvision's own
architectures (random init, 10 classes) scripted with torch.jit.script for Fashion-MNIST
sized input ([1, 28, 28]; the wrapper repeats the grey channel to the 3 the stem expects),
the way a practitioner hands prunelab a torchvision model. Needs python3-torchvision
(cluster/install-deps.sh installs it).
Run: /usr/bin/python3 examples/torchvision/make_models.py"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(here, "..", "..", "bench", "torchvision_models.py")
sys.exit(subprocess.call([sys.executable, script, "--out", here, "--models", "resnet18,mobilenet_v2",
                          "--channels", "1", "--image", "28", "--classes", "10"]))
