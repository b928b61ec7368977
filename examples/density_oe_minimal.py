"""Outlier Exposure for a density model in one file: train a small PixelCNN++, fine-tune it with OE, compare the
bits/dim of in-distribution and OOD images before and after.

A likelihood model trained on natural photos can give *simpler* unseen images a higher likelihood than its own
test images (Nalisnick et al. 2019; the OE paper's Figure 2: CIFAR-10 vs SVHN), so bits/dim ranks them as less
anomalous.  OE (Hendrycks, Mazeika & Dietterich, ICLR 2019, Sec. 4.4) fine-tunes the model with a margin ranking
loss that asks every outlier to cost at least ``margin`` bits/dim more than every in-distribution image:

    L = mean bpd(x_in) + lam * mean_{i,j} max(0, margin + bpd(x_in_i) - bpd(x_out_j))   (density_oe.OEMarginLoss)

Everything runs offline on a CPU, on the suite's mini benchmark (built once and cached in ~/.cache/oe_suite):

    python examples/density_oe_minimal.py                      # about a minute on a 2-core CPU
    python examples/density_oe_minimal.py --epochs=4 --lam=2.0  # any setting below, as --name=value

The loop is plain on purpose.  ``python -m density_oe.train`` does the same with resumable checkpoints, the TF
recipe (EMA, lr decay), bf16, DDP and Glow (``--arch glow``); ``python -m analysis.evaluate`` scores with the
paper's protocol.
"""
import sys
import time

import torch
from torch.utils.data import DataLoader

from density_oe import OEMarginLoss
from density_oe.pixelcnn import PixelCNNConfig, PixelCNNpp, data_dependent_init
from density_oe.units import bits_per_dim
from oe_core.data import get_dataset
from oe_core.data.transforms import to_unit_range
from oe_core.metrics import auroc

# ----------------------------------------------------------------------------- settings
image_size = 16          # side of the mini benchmark's images (a multiple of 4)
n_train = 2000           # in-distribution training images
nr_filters = 16          # PixelCNN++ channels (the paper: 160)
nr_resnet = 1            # gated resnets per stream and resolution (the paper: 5)
nr_mix = 5               # logistic mixture components (the paper: 10)
epochs = 2               # maximum-likelihood training
oe_steps = 150           # OE fine-tuning steps
batch_size = 32          # in-distribution images per step (OE: plus as many outliers)
lr = 2e-3                # Adam learning rate of the baseline
oe_lr = 5e-4             # Adam learning rate of the fine-tune
margin = 1.0             # OE margin in bits/dim (the suite's default)
lam = 1.0                # OE weight
ood_sets = ("mini-svhn", "mini-textures", "gaussian")
n_eval = 300             # test images of each set
seed = 0
threads = 2
for arg in sys.argv[1:]:  # --name=value overrides, nanoGPT-style
    name, _, value = arg.removeprefix("--").partition("=")
    if name not in globals() or name.startswith("_") or not value:
        sys.exit(f"unknown or malformed option {arg!r}; options: --name=value for a setting at the top of this file")
    old = globals()[name]
    globals()[name] = tuple(value.split(",")) if isinstance(old, tuple) else type(old)(value)
torch.manual_seed(seed)
torch.set_num_threads(threads)


def load(name: str, split=None, n=None) -> torch.Tensor:
    """All images of a registered dataset on the model's [-1, 1] grid (N x 3 x H x W)."""
    ds = get_dataset(name, split, size=image_size, **({"n": n} if n else {}))
    x, _ = next(iter(DataLoader(ds, batch_size=len(ds))))
    return to_unit_range(x)


def batches(x, size, generator):
    """One epoch: shuffled batches of ``size``, the last partial batch dropped."""
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x) - size + 1, size):
        yield x[order[i:i + size]]


def endless(x, size, generator):
    """Shuffled batches of ``x`` without end, reshuffled at every pass."""
    while True:
        yield from batches(x, size, generator)


def bpd(x) -> torch.Tensor:
    """Per-image bits/dim: the OOD score (higher = more anomalous)."""
    return bits_per_dim(model.log_prob(x), x[0].numel())


# ----------------------------------------------------------------------------- data and model
t0 = time.time()
x_train = load("mini-id", "train", n_train)
x_test = load("mini-id", "test", n_eval)
x_out = load("mini-outliers", "train", n_train)                # the OE auxiliary set (never used for testing)
ood = {name: load(name, n=n_eval) for name in ood_sets}        # the OOD test sets (never seen in training)
model = PixelCNNpp(PixelCNNConfig(nr_resnet=nr_resnet, nr_filters=nr_filters, nr_logistic_mix=nr_mix, dropout=0.0))
data_dependent_init(model, x_train[:64])                       # weight norm: unit-scale activations at the start
print(f"data: {len(x_train)} train, {len(x_out)} outliers, {len(ood)} OOD sets ({time.time() - t0:.1f}s)")


@torch.no_grad()
def report(title: str) -> float:
    """Mean bits/dim of each set and the AUROC of bits/dim (OOD positive) per OOD set; returns the mean AUROC."""
    model.eval()
    s_in = torch.cat([bpd(x) for x in x_test.split(100)])
    parts = []
    aurocs = {}
    for name, x in ood.items():
        s_out = torch.cat([bpd(b) for b in x.split(100)])
        aurocs[name] = auroc(s_in, s_out)
        parts.append(f"{name} {s_out.mean():.2f} bpd AUROC {100 * aurocs[name]:.1f}")
    mean = sum(aurocs.values()) / len(aurocs)
    print(f"{title}: test {s_in.mean():.2f} bpd | " + " | ".join(parts) + f" | mean AUROC {100 * mean:.1f}%")
    return mean


# ----------------------------------------------------------------------------- 1. baseline: maximum likelihood
optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.95, 0.9995))
g = torch.Generator().manual_seed(seed)
for epoch in range(epochs):
    model.train()
    for x in batches(x_train, batch_size, g):
        loss = bpd(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    print(f"baseline epoch {epoch + 1}/{epochs}: train {loss.item():.3f} bpd ({time.time() - t0:.0f}s)")
before = report("baseline    ")

# ----------------------------------------------------------------------------- 2. OE fine-tuning
criterion = OEMarginLoss(margin=margin, lam=lam)               # both terms in bits/dim
optimizer = torch.optim.Adam(model.parameters(), lr=oe_lr, betas=(0.95, 0.9995))
inliers, outliers = endless(x_train, batch_size, g), endless(x_out, batch_size, g)
model.train()
for step in range(oe_steps):
    x, xo = next(inliers), next(outliers)
    scores = bpd(torch.cat([x, xo]))                           # one forward pass for both batches
    loss = criterion(scores[:len(x)], scores[len(x):])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if (step + 1) % 20 == 0:
        print(f"OE step {step + 1}/{oe_steps}: loss {loss.item():.3f} | in {scores[:len(x)].mean():.2f} bpd, "
              f"outliers {scores[len(x):].mean():.2f} bpd ({time.time() - t0:.0f}s)")
after = report("OE fine-tuned")
print(f"mean bpd AUROC {100 * before:.1f}% -> {100 * after:.1f}% in {time.time() - t0:.0f}s")
