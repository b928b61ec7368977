"""``python -m density_oe.sample``: draw images from a trained density model and save them as a PNG grid.

The architecture is read from the checkpoint (``--arch`` only checks it).  A family whose network has its own
``sample(n, height, width, temperature, generator)`` method is sampled by it in one pass, with the latents drawn
at ``--temperature`` times their prior scale: Glow (one reverse pass; the Glow paper's samples use 0.7, 1 is the
model itself) and the VAE (latents from the prior, then one draw of every sub-pixel from the decoder).  PixelCNN++ sampling is autoregressive: one network pass per pixel, each drawing the pixel's R, G, B in turn from the DMOL
(:func:`density_oe.pixelcnn.dmol.sample`), with every weight normalised once for the whole loop.  Because the network is
causal in the vertical direction (outputs at row ``i`` depend only on input rows ``<= i``), the pass for a pixel in
row ``i`` runs on the first ``ceil((i+1)/4)*4`` rows only (the same outputs for those rows as the full image, a
multiple of 4 for the two stride-2 stages), which halves the work on average.  Random numbers come from a CPU
generator seeded by ``--seed``, so samples do not depend on the device.
"""
from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torchvision.utils import save_image

from oe_core.config import help_field, parse_config, require
from oe_core.errors import ConfigError, cli_main
from oe_core.outputs import check_writable_file
from oe_core.progress import progress_bar
from oe_core.run import autocast, resolve_device
from oe_core.atomic import atomic_write_bytes

from .archs import ARCHS, arch_for_model
from .pixelcnn import dmol, frozen_weights
from .weights import image_size_for, load_density_model


@torch.inference_mode()
def sample_images(model: torch.nn.Module, n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device, amp: str = "none", progress: bool = False) -> torch.Tensor:
    """``n`` samples ``(n, 3, height, width)`` in [-1, 1] (not rounded to 8 bits, as in the original code)."""
    model = model.to(device).eval()
    x = torch.zeros(n, 3, height, width, device=device)
    with frozen_weights(model):
        for i in progress_bar(range(height), "sampling rows", progress):
            rows = min(height, -(-(i + 1) // 4) * 4)
            for j in range(width):
                with autocast(device, amp):
                    params = model(x[:, :, :rows])
                x[:, :, i, j] = dmol.sample(params[:, :, i:i + 1, j:j + 1], generator)[:, :, 0, 0]
    return x


def has_own_sampler(model: torch.nn.Module) -> bool:
    """Whether the family samples in one pass with its network's ``sample`` method (Glow, VAE), which takes a
    temperature; PixelCNN++ has none and is sampled autoregressively by :func:`sample_images`."""
    return callable(getattr(model, "sample", None))


@torch.inference_mode()
def sample_latent(model: torch.nn.Module, n: int, height: int, width: int, generator: torch.Generator,
                  device: torch.device, temperature: float = 1.0) -> torch.Tensor:
    """``n`` samples ``(n, 3, height, width)`` in [-1, 1] on the 8-bit grid from a family with its own
    ``sample`` method (:func:`has_own_sampler`)."""
    return model.to(device).eval().sample(n, height, width, temperature, generator)


@dataclass
class SampleConfig:
    """Draw samples from a density model (any registered family) and save them as one PNG grid."""

    ckpt: str = help_field("", "density run folder or checkpoint (its EMA weights), or a pclucas14/pixel-cnn-pp "
                               ".pth file")
    out: str = help_field("samples.png", "PNG file for the grid")
    n: int = help_field(16, "number of samples")
    nrow: int = help_field(4, "images per row of the grid")
    image_size: int = help_field(0, "side of the sampled images, a multiple of 4 for PixelCNN++, of 2^L for an "
                                    "L-level Glow (0: the size the model was trained at, recorded in its "
                                    "checkpoint; 32 if it is not recorded)")
    force_size: bool = help_field(False, "allow an --image-size other than the model's training size")
    arch: str = help_field("", "architecture the checkpoint must hold (empty: whatever it holds)",
                           choices=("", *ARCHS.names()))
    temperature: float = help_field(1.0, "Glow, VAE: scale of the latents' prior standard deviation (PixelCNN++: 1 "
                                         "only)")
    seed: int = help_field(1, "seed of the sampling generator")
    weights: str = help_field("eval", "eval: the run's EMA weights (as the TF code samples); train: raw weights",
                              choices=("eval", "train"))
    device: str = help_field("auto", "cpu, cuda, cuda:N or auto")
    amp: str = help_field("none", "bf16: network in bfloat16 (the DMOL stays float32)", choices=("none", "bf16"))
    progress: bool = help_field(True, "show a progress bar (one step per image row)")

    def validate(self) -> None:
        require(bool(self.ckpt), "--ckpt must name a density run, checkpoint or .pth file")
        require(self.n > 0 and self.nrow > 0, "--n and --nrow must be positive")
        require(self.image_size >= 0, f"--image-size must be >= 0, got {self.image_size}")
        require(self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}")
        require(Path(self.out).suffix.lower() == ".png", f"--out must be a .png file, got {self.out!r}")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(SampleConfig, argv, prog="python -m density_oe.sample")
    check_writable_file(cfg.out)
    model, model_cfg = load_density_model(cfg.ckpt, weights=cfg.weights)
    arch = arch_for_model(model)
    if cfg.arch and cfg.arch != arch.name:
        raise ConfigError(f"--arch {cfg.arch}: {cfg.ckpt!r} holds a {arch.display} (--arch {arch.name})")
    height, width = image_size_for(model, cfg.image_size, cfg.force_size, unknown=32)
    multiple = arch.multiple(model_cfg)
    if height % multiple or width % multiple:
        raise ConfigError(f"--image-size must be a multiple of {multiple} for this {arch.display}, "
                          f"got {height}x{width}")
    if not has_own_sampler(model) and cfg.temperature != 1.0:
        raise ConfigError(f"--temperature applies to families with latents (Glow, VAE), not to {cfg.ckpt!r}'s "
                          f"{arch.display}")
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    print(f"sampling {cfg.n} images of {height}x{width}", file=sys.stderr, flush=True)
    if has_own_sampler(model):
        x = sample_latent(model, cfg.n, height, width, g, device, cfg.temperature)
    else:
        x = sample_images(model, cfg.n, height, width, g, device, cfg.amp, progress=cfg.progress)
    buf = io.BytesIO()
    save_image((x.cpu() + 1.0) / 2.0, buf, format="png", nrow=cfg.nrow)
    out = Path(cfg.out)
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {cfg.n} samples of {height}x{width} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
