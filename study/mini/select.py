"""``python -m study.mini.select`` (old name: ``python -m analysis.mini_select``): choose the mini-study
classifier's training lengths on validation data.

The paper keeps its OOD test sets unseen during training and tuning (its App. A tunes on validation OOD sets
built from other data).  This tool does the same for the mini benchmark: it trains the classifier baseline and
candidate OE fine-tunes with the suite's own trainer (``python -m classifiers_oe.train``, exactly as
the mini-study runs them) and scores MSP on

* in-distribution: ``mini-id`` **val** (independent crops, never trained on; the test split is not read), and
* validation OOD sets that share nothing with the test OOD sets: ``mini-val-outliers`` (thumbnails of three
  pictures held out of OE training and of every test set) and the paper's App. A validation sets built from
  ``mini-id`` val itself -- uniform noise, means of image pairs, 2x2 jigsaw, speckle noise, pixelation,
  inversion.

It prints one markdown table: validation accuracy, AUROC and FPR95 per validation set and their means, for the
baseline and each candidate ``EPOCHS@LR``.  The mini-study presets' ``cls_oe_epochs`` / ``cls_oe_lr`` were
picked from its output (docs/mini_benchmark.md); the test OOD sets were not looked at.
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from oe_core.atomic import atomic_write_text
from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import cli_main
from study.mini_benchmark.versions import BENCHMARKS, DEFAULT_BENCHMARK


@dataclass
class SelectConfig:
    """Train the mini classifier and candidate OE fine-tunes; score MSP on validation sets only."""

    candidates: list[str] = help_field(["2@0.001", "2@0.01", "4@0.01"],
                                       "OE fine-tunes to compare, each EPOCHS@LR")
    epochs: int = help_field(5, "baseline epochs")
    benchmark: str = help_field(DEFAULT_BENCHMARK, "mini benchmark version (v2, v3, v4): its in-distribution val "
                                "split, OE set and validation OOD set are used", choices=tuple(BENCHMARKS))
    size: int = help_field(16, "image side")
    depth: int = help_field(16, "WRN depth")
    width: int = help_field(2, "WRN widen factor")
    seed: int = help_field(1, "training seed")
    n_val: int = help_field(1000, "images of mini-id val and of each validation OOD set")
    limit_steps: int = help_field(0, "cap on steps per epoch (0: full epochs; tests use a few)")
    amp: str = help_field("auto", "training precision, as the mini-study's --amp (python -m study.mini)",
                          choices=("auto", "bf16", "none"))
    device: str = help_field("cpu", "cpu, cuda or auto")
    work: str = help_field("", "folder for the trained runs (empty: a temporary folder)")
    out: str = help_field("", "also write the table to this file")

    def validate(self) -> None:
        for c in self.candidates:
            require(c.count("@") == 1, f"--candidates: {c!r} is not EPOCHS@LR")
        require(self.epochs >= 1 and self.n_val >= 10, "--epochs >= 1 and --n-val >= 10")


def app_a_sets(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The paper's App. A validation OOD sets built from in-distribution images ``x`` (uint8 NHWC)."""
    rng = np.random.default_rng(seed)
    n, s = len(x), x.shape[1]
    xf = x.astype(np.float32)
    h = s // 2
    jig = np.empty_like(x)
    for i in range(n):
        q = [x[i, :h, :h], x[i, :h, h:], x[i, h:, :h], x[i, h:, h:]]
        o = rng.permutation(4)
        jig[i] = np.concatenate([np.concatenate([q[o[0]], q[o[1]]], 1), np.concatenate([q[o[2]], q[o[3]]], 1)], 0)
    p = 4 if s >= 16 else 2
    return {
        "uniform noise": rng.integers(0, 256, size=x.shape, dtype=np.uint8),
        "pair means": np.round((xf + xf[rng.permutation(n)]) / 2).astype(np.uint8),
        "jigsaw": jig,
        "speckle": np.round(np.clip(xf * (1 + rng.normal(0, 0.5, size=x.shape)), 0, 255)).astype(np.uint8),
        "pixelate": np.repeat(np.repeat(x[:, ::p, ::p], p, 1), p, 2)[:, :s, :s],
        "inverted": 255 - x,
    }


@torch.no_grad()
def msp_logits(model: torch.nn.Module, x: np.ndarray, device: torch.device) -> torch.Tensor:
    from classifiers_oe.inputs import model_input
    out = []
    for i in range(0, len(x), 500):
        b = torch.from_numpy(np.ascontiguousarray(x[i:i + 500].transpose(0, 3, 1, 2))).to(device)
        out.append(model(model_input(b)).float().cpu())
    return torch.cat(out)


def score(run: str, val: tuple[np.ndarray, np.ndarray], oods: dict[str, np.ndarray],
          device: torch.device) -> dict:
    """Validation accuracy, and AUROC / FPR95 (%) of MSP per validation OOD set and their means."""
    from classifiers_oe.logits import msp_score
    from classifiers_oe.weights import load_classifier
    from oe_core.metrics import auroc, fpr_at_tpr
    model, _ = load_classifier(run, device)
    z = msp_logits(model, val[0], device)
    s_in = msp_score(z).numpy()
    row = {"acc": 100.0 * float((z.argmax(1).numpy() == val[1]).mean())}
    for name, x in oods.items():
        s_out = msp_score(msp_logits(model, x, device)).numpy()
        row[name] = (100.0 * auroc(s_in, s_out), 100.0 * fpr_at_tpr(s_in, s_out))
    row["mean"] = tuple(float(np.mean([row[k][j] for k in oods])) for j in (0, 1))
    return row


def run_select(cfg: SelectConfig) -> str:
    from classifiers_oe import train as cls_train
    from oe_core.run import resolve_device
    from study.mini_benchmark.sets import build_mini
    from study.mini_benchmark.versions import get_benchmark

    from .study import resolve_amp

    device = resolve_device(cfg.device)
    amp = resolve_amp(cfg.amp, cfg.device)
    bench = get_benchmark(cfg.benchmark)
    val_id = build_mini(bench.id_set, "val", size=cfg.size, n=cfg.n_val)
    oods = {bench.val_outliers: build_mini(bench.val_outliers, "val", size=cfg.size, n=cfg.n_val).images,
            **app_a_sets(val_id.images)}
    val = (val_id.images, val_id.targets)
    tmp = None if cfg.work else tempfile.TemporaryDirectory(prefix="mini_select_")
    work = Path(cfg.work or tmp.name)
    common = ["--dataset", bench.id_set, "--arch", "wrn", "--depth", str(cfg.depth), "--widen-factor", str(cfg.width),
              "--seed", str(cfg.seed), "--num-workers", "0", "--image-size", str(cfg.size), "--amp", amp,
              "--device", cfg.device, "--no-progress"]
    if cfg.limit_steps:
        common += ["--limit-steps", str(cfg.limit_steps)]
    base = str(work / f"clf_e{cfg.epochs}")
    rc = cls_train.main(["--mode", "baseline", "--epochs", str(cfg.epochs), "--out", base, *common])
    require(rc in (None, 0), f"baseline training failed ({rc})")
    rows = {f"baseline ({cfg.epochs} epochs)": score(base, val, oods, device)}
    for cand in cfg.candidates:
        epochs, lr = cand.split("@")
        out = str(work / f"clf_oe_{epochs}_{lr}")
        rc = cls_train.main(["--mode", "oe_tune", "--init", base, "--outliers", bench.outliers, "--epochs", epochs,
                             "--lr", lr, "--out", out, *common])
        require(rc in (None, 0), f"OE fine-tune {cand} failed ({rc})")
        rows[f"OE {epochs} epochs, lr {lr}"] = score(out, val, oods, device)
    names = list(oods)
    lines = [f"MSP on validation data ({bench.id_set} val vs validation OOD sets; seed {cfg.seed}, {cfg.size} px, "
             f"WRN-{cfg.depth}-{cfg.width}); cells: AUROC / FPR95 (%)", "",
             "| run | val accuracy (%) | " + " | ".join(names) + " | mean |",
             "|---|---|" + "---|" * (len(names) + 1)]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['acc']:.1f} | " + " | ".join(f"{r[k][0]:.1f} / {r[k][1]:.1f}"
                                                                  for k in names + ["mean"]) + " |")
    table = "\n".join(lines) + "\n"
    if cfg.out:
        atomic_write_text(Path(cfg.out), table)
    if tmp is not None:
        tmp.cleanup()
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    cfg = parse_config(SelectConfig, argv, prog="python -m study.mini.select")
    print(run_select(cfg), end="")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(cli_main(main))
