"""Outlier Exposure in one file: train a small classifier, fine-tune it with OE, compare MSP before and after.

Hendrycks, Mazeika & Dietterich, *Deep Anomaly Detection with Outlier Exposure* (ICLR 2019): fine-tune a
classifier so that its softmax on auxiliary outliers is close to uniform,

    L = CE(f(x_in), y) + lam * H(U; softmax(f(x_out)))        (classifiers_oe.OELoss)

and the maximum softmax probability (MSP) separates unseen OOD sets from the test images better.  Everything
runs offline on a CPU, on the suite's mini benchmark (images that ship with scikit-image, scikit-learn and
matplotlib; built once and cached in ~/.cache/oe_suite):

    python examples/oe_minimal.py                       # under a minute on a 2-core CPU
    python examples/oe_minimal.py --epochs=8 --lam=1.0  # any setting below, as --name=value

The loop is plain on purpose.  The CLIs (``python -m classifiers_oe.train``) do the same with resumable
checkpoints, the paper's schedule, augmentation, DDP and the reference evaluation protocol.
"""
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from classifiers_oe import OELoss
from classifiers_oe.detectors import MSP
from classifiers_oe.inputs import model_input
from classifiers_oe.models import build_model
from oe_core.data import dataset_info, get_dataset
from oe_core.metrics import auroc, fpr_at_tpr

# ----------------------------------------------------------------------------- settings
image_size = 16          # side of the mini benchmark's images
n_train = 2000           # in-distribution training images (mini-id has 8 classes)
depth, widen = 10, 2     # WRN-depth-widen
epochs = 4               # baseline training
oe_epochs = 2            # OE fine-tuning
batch_size = 64          # in-distribution images per step
oe_batch_size = 128      # outliers per step (the paper: 128 + 256)
lr = 0.05                # baseline SGD learning rate (cosine to 0)
oe_lr = 0.01             # fine-tuning learning rate
lam = 0.5                # OE weight (the paper's value for vision)
ood_sets = ("mini-svhn", "mini-textures", "mini-faces", "gaussian", "blobs")
n_eval = 400             # test images of each set
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


def load(name: str, split=None, n=None):
    """All images (uint8, N x 3 x H x W) and labels of a registered dataset, via the dataset registry."""
    ds = get_dataset(name, split, size=image_size, **({"n": n} if n else {}))
    x, y = next(iter(DataLoader(ds, batch_size=len(ds))))
    return x, y


def inputs(name: str, x):
    """The classifier's input scaling: mean/std for natural images, [-1, 1] for the noise sets (as the paper)."""
    return model_input(x, normalized=dataset_info(name).normalize)


def batches(x, y, size, generator):
    """One epoch: shuffled batches of ``size``, the last partial batch dropped."""
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x) - size + 1, size):
        idx = order[i:i + size]
        yield x[idx], y[idx]


def endless(x, size, generator):
    """Shuffled batches of ``x`` without end, reshuffled at every pass: the outlier stream of OE."""
    assert len(x) >= size, f"{len(x)} images cannot fill a batch of {size}"
    while True:
        yield from batches(x, torch.zeros(len(x)), size, generator)


# ----------------------------------------------------------------------------- data and model
t0 = time.time()
x_train, y_train = load("mini-id", "train", n_train)
x_test, y_test = load("mini-id", "test", n_eval)
x_out, _ = load("mini-outliers", "train", n_train)           # the OE auxiliary set (never used for testing)
ood = {name: load(name, n=n_eval)[0] for name in ood_sets}   # the OOD test sets (never seen in training)
model = build_model("wrn", dataset_info("mini-id").num_classes, depth=depth, widen_factor=widen, dropout=0.0)
print(f"data: {len(x_train)} train, {len(x_out)} outliers, {len(ood)} OOD sets ({time.time() - t0:.1f}s)")


@torch.no_grad()
def report(title: str) -> tuple[float, float]:
    """Test accuracy and the AUROC of MSP (OOD positive, higher score = more anomalous) per OOD set; returns the
    mean AUROC and the mean FPR at 95% TPR."""
    model.eval()
    detector = MSP(model)
    logits = model(inputs("mini-id", x_test))
    accuracy = (logits.argmax(1) == y_test).float().mean().item()
    s_in = detector.predict_features(logits)
    s_out = {name: detector.predict(inputs(name, x)) for name, x in ood.items()}
    aurocs = {name: auroc(s_in, s) for name, s in s_out.items()}
    mean = sum(aurocs.values()) / len(aurocs)
    fpr = sum(fpr_at_tpr(s_in, s) for s in s_out.values()) / len(s_out)
    print(f"{title}: accuracy {100 * accuracy:.1f}% | MSP AUROC " +
          " ".join(f"{k} {100 * v:.1f}" for k, v in aurocs.items()) + f" | mean {100 * mean:.1f}% | "
          f"mean FPR95 {100 * fpr:.1f}%")
    return mean, fpr


# ----------------------------------------------------------------------------- 1. baseline: cross-entropy
steps = epochs * (len(x_train) // batch_size)
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
g = torch.Generator().manual_seed(seed)
for epoch in range(epochs):
    model.train()
    for x, y in batches(x_train, y_train, batch_size, g):
        loss = F.cross_entropy(model(inputs("mini-id", x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    print(f"baseline epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} | lr {schedule.get_last_lr()[0]:.2e} "
          f"({time.time() - t0:.0f}s)")
before = report("baseline       ")

# ----------------------------------------------------------------------------- 2. OE fine-tuning
# Every epoch covers the whole in-distribution set; the outlier stream cycles for as long as that takes.
criterion = OELoss(lam)
steps = oe_epochs * (len(x_train) // batch_size)
optimizer = torch.optim.SGD(model.parameters(), lr=oe_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)   # ends at 0 after exactly these steps
outliers = endless(x_out, oe_batch_size, g)
for epoch in range(oe_epochs):
    model.train()
    seen = 0
    for x, y in batches(x_train, y_train, batch_size, g):
        xo, _ = next(outliers)
        logits = model(torch.cat([inputs("mini-id", x), inputs("mini-outliers", xo)]))  # one pass: shared BN stats
        loss = criterion(logits[:len(x)], y, logits[len(x):])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        seen += len(x)
    print(f"OE epoch {epoch + 1}/{oe_epochs}: loss {loss.item():.3f} | {seen} in-distribution images | "
          f"lr {schedule.get_last_lr()[0]:.2e} ({time.time() - t0:.0f}s)")
after = report("OE fine-tuned  ")
print(f"mean MSP AUROC {100 * before[0]:.1f}% -> {100 * after[0]:.1f}%, mean FPR95 {100 * before[1]:.1f}% -> "
      f"{100 * after[1]:.1f}% in {time.time() - t0:.0f}s")
