"""``RunConfig``: the options every training run shares (both trainers inherit it)."""
from __future__ import annotations

from dataclasses import dataclass

from ..cli_config import help_field, require


@dataclass
class RunConfig:
    """Options shared by every training run."""

    out: str = help_field("runs/run", "run folder: config.json, metrics.csv/json and checkpoints go here")
    data_root: str = help_field("", "folder holding the datasets (see `python -m oe_core.data`); "
                                    "not needed for generated and mini-* sets")
    download: bool = help_field(False, "download datasets torchvision can download (CIFAR, SVHN) into --data-root")
    device: str = help_field("auto", "cpu, cuda, cuda:N or auto (cuda if available); under torchrun, cuda means "
                                     "cuda:LOCAL_RANK")
    seed: int = help_field(1, "seed for initialisation, data order, augmentation and dropout (the reference uses 1)")
    epochs: int = help_field(100, "number of epochs")
    amp: str = help_field("none", "mixed precision: bf16 autocast (likelihoods stay fp32) or none",
                          choices=("none", "bf16"))
    compile: bool = help_field(False, "torch.compile the model (falls back to eager with a warning if it fails)")
    channels_last: bool = help_field(False, "use the channels_last memory format (faster convolutions on GPUs)")
    cuda_graphs: str = help_field("auto", "capture the whole fixed-shape train step (forward, loss, backward, "
                                          "optimizer, EMA) as one CUDA graph and replay it; auto: on CUDA for "
                                          "trainers that support it (density models), without DDP; falls back to "
                                          "eager with a warning where capture fails", choices=("auto", "on", "off"))
    num_workers: int = help_field(2, "DataLoader worker processes")
    resume: bool = help_field(True, "continue from the checkpoint in --out if there is one (--no-resume starts "
                                    "over and overwrites it)")
    ckpt_every: int = help_field(0, "also checkpoint every N optimizer steps (0: only at the end of each epoch)")
    limit_steps: int = help_field(0, "stop each epoch after N steps (0: full epochs); for smoke tests and demos")
    on_nonfinite: str = help_field("stop", "a NaN/inf loss stops the run naming the step, or skips the batch "
                                           "and counts it", choices=("stop", "skip"))
    read_every: int = help_field(25, "read the loss and logs back from the device every N steps (and before "
                                     "every checkpoint and at each epoch's end) instead of waiting for every step; "
                                     "a non-finite loss stops the run there, naming its step")
    progress: bool = help_field(True, "show tqdm progress bars")
    tensorboard: bool = help_field(False, "also write per-step and per-epoch scalars as TensorBoard events to "
                                          "OUT/tensorboard (needs: pip install tensorboard)")

    def validate(self) -> None:
        require(self.epochs > 0, f"--epochs must be positive, got {self.epochs}")
        require(self.num_workers >= 0, f"--num-workers must be >= 0, got {self.num_workers}")
        require(self.ckpt_every >= 0, f"--ckpt-every must be >= 0, got {self.ckpt_every}")
        require(self.limit_steps >= 0, f"--limit-steps must be >= 0, got {self.limit_steps}")
        require(self.read_every >= 1, f"--read-every must be >= 1, got {self.read_every}")
        require(bool(self.out), "--out must name a folder")
