"""``python -m density_oe.sample``: draw images from a trained density model and save them as a PNG grid.

The architecture is read from the checkpoint (``--arch`` only checks it).  Each family's sampler is
``DensityArch.sample`` (:mod:`density_oe.archs`), and the options it reads are its ``sample_options``.  Glow and the
VAE sample their latents in one pass at ``--temperature`` times their prior scale (the Glow paper's samples use 0.7;
1 is the model itself; the VAE then draws every sub-pixel from its decoder).  The diffusion model samples
ancestrally with ``--steps`` steps of ``p(z_s | z_t)`` (VDM's sampler;
:meth:`density_oe.diffusion.model.Diffusion.sample`).  PixelCNN++ sampling is autoregressive: one network pass per pixel, each drawing the pixel's R, G, B in turn from the DMOL
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

from oe_core.cli_config import help_field, parse_config, require
from oe_core.errors import ConfigError, cli_main
from oe_core.outputs import check_writable_file
from oe_core.run import resolve_device
from oe_core.atomic import atomic_write_bytes

from .archs import ARCHS, arch_for_model
from .pixelcnn.sampling import sample_images  # noqa: F401  (re-exported: PixelCNN++'s sampler lived here)
from .weights import image_size_for, load_density_model

# options only some families read; each family names its own in DensityArch.sample_options
FAMILY_OPTIONS = ("temperature", "steps", "amp")


@dataclass
class SampleConfig:
    """Draw samples from a density model (any registered family) and save them as one PNG grid."""

    ckpt: str = help_field("", "density run folder or checkpoint (its EMA weights), or a pclucas14/pixel-cnn-pp "
                               ".pth file")
    out: str = help_field("samples.png", "PNG file for the grid")
    n: int = help_field(16, "number of samples")
    nrow: int = help_field(4, "images per row of the grid")
    image_size: int = help_field(0, "side of the sampled images, a multiple of 4 for PixelCNN++, of 2^L for an "
                                    "L-level Glow, of 2^(L-1) for an L-resolution diffusion U-Net (0: the size the "
                                    "model was trained at, recorded in its checkpoint; 32 if it is not recorded)")
    force_size: bool = help_field(False, "allow an --image-size other than the model's training size")
    arch: str = help_field("", "architecture the checkpoint must hold (empty: whatever it holds)",
                           choices=("", *ARCHS.names()))
    temperature: float = help_field(1.0, "Glow, VAE: scale of the latents' prior standard deviation")
    steps: int = help_field(1000, "diffusion: steps of the ancestral sampler from t = 1 to t = 0")
    seed: int = help_field(1, "seed of the sampling generator")
    weights: str = help_field("eval", "eval: the run's EMA weights (as the TF code samples); train: raw weights",
                              choices=("eval", "train"))
    device: str = help_field("auto", "cpu, cuda, cuda:N or auto")
    amp: str = help_field("none", "PixelCNN++ and diffusion: bf16 runs the network in bfloat16 (the DMOL, the "
                                  "diffusion's update stay float32)", choices=("none", "bf16"))
    progress: bool = help_field(True, "show a progress bar (one step per image row or diffusion step)")

    def validate(self) -> None:
        require(bool(self.ckpt), "--ckpt must name a density run, checkpoint or .pth file")
        require(self.n > 0 and self.nrow > 0, "--n and --nrow must be positive")
        require(self.image_size >= 0, f"--image-size must be >= 0, got {self.image_size}")
        require(self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}")
        require(self.steps >= 1, f"--steps must be >= 1, got {self.steps}")
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
    if arch.sample is None:
        raise ConfigError(f"{cfg.ckpt!r} holds a {arch.display}, which has no sampler")
    defaults = SampleConfig()
    for name in FAMILY_OPTIONS:
        if getattr(cfg, name) != getattr(defaults, name) and name not in arch.sample_options:
            raise ConfigError(f"--{name} does not apply to {arch.display} ({cfg.ckpt!r}); it reads "
                              f"{', '.join('--' + o for o in arch.sample_options) or 'none of ' + str(FAMILY_OPTIONS)}")
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    print(f"sampling {cfg.n} images of {height}x{width}", file=sys.stderr, flush=True)
    x = arch.sample(model, cfg.n, height, width, g, device, cfg)
    buf = io.BytesIO()
    save_image((x.cpu() + 1.0) / 2.0, buf, format="png", nrow=cfg.nrow)
    out = Path(cfg.out)
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {cfg.n} samples of {height}x{width} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
