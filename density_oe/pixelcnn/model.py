"""PixelCNN++ (Salimans et al. 2017) as in the original TF code: maps images in [-1, 1] to DMOL parameters.

Structure (``R = nr_resnet``, ``F = nr_filters``, ``K = nr_logistic_mix``):

* input: the image plus a ones channel (so the network can tell the image from the zero padding);
* two causal streams: ``u = down_shift(conv2x3(x))`` sees the rows above; ``ul = down_shift(conv1x3(x)) +
  right_shift(conv2x1(x))`` sees the rows above and the pixels to the left;
* up pass at 32, 16, 8 (for 32x32 inputs): ``R`` gated resnets per stream per resolution (``ul`` blocks take ``u``
  as auxiliary input), stride-2 shifted convolutions in between; every activation is kept for the down pass;
* down pass at 8, 16, 32 with ``R``, ``R+1``, ``R+1`` blocks: ``u`` takes the matching up-pass ``u`` as auxiliary
  input, ``ul`` takes ``cat(u, up-pass ul)``; stride-2 shifted transposed convolutions in between;
* head: ``nin(elu(ul), 10 K)``, always in float32: under bf16 autocast the body runs in bfloat16 and the head
  turns its last activation back into float32, so the DMOL parameters the likelihood reads are float32 (rounding
  them to bfloat16 would move the bits/dim; the head is under 1% of the FLOPs).

Outputs at a position depend only on the pixels before it in raster order (and, per channel, the DMOL couples
R -> G -> B).  Any batch size works in any call; height and width must be multiples of 4.  Parameter names follow
the pclucas14 port (``up_layers.0.u_stream.0.conv_input.weight_v``, ...), minus its wrapper level
(``.conv``/``.lin_a``/``.deconv``), so :mod:`density_oe.port` maps checkpoints by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn as nn

from oe_core.cli_config import config_from_dict, help_field, require
from oe_core.errors import OEError

from .activations import elu
from .dmol import log_prob as dmol_log_prob
from .layers import (DownRightShiftedConv2d, DownRightShiftedDeconv2d, DownShiftedConv2d, DownShiftedDeconv2d,
                     GatedResnet, Nin, down_shift, right_shift)


@dataclass
class PixelCNNConfig:
    """PixelCNN++ hyperparameters (defaults: the paper's / TF code's)."""

    nr_resnet: int = help_field(5, "gated resnet blocks per stream per resolution in the up pass")
    nr_filters: int = help_field(160, "channels of every hidden layer")
    nr_logistic_mix: int = help_field(10, "mixture components of the discretized logistic likelihood")
    dropout: float = help_field(0.5, "element-wise dropout rate inside every gated resnet (training only)")

    def validate(self) -> None:
        require(self.nr_resnet >= 1, f"--nr-resnet must be >= 1, got {self.nr_resnet}")
        require(self.nr_filters >= 1, f"--nr-filters must be >= 1, got {self.nr_filters}")
        require(self.nr_logistic_mix >= 1, f"--nr-logistic-mix must be >= 1, got {self.nr_logistic_mix}")
        require(0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}")


class _UpBlock(nn.Module):
    def __init__(self, nr_resnet: int, filters: int, dropout: float):
        super().__init__()
        self.u_stream = nn.ModuleList([GatedResnet(filters, DownShiftedConv2d, 0, dropout) for _ in range(nr_resnet)])
        self.ul_stream = nn.ModuleList([GatedResnet(filters, DownRightShiftedConv2d, 1, dropout)
                                        for _ in range(nr_resnet)])

    def forward(self, u, ul, u_list: list, ul_list: list):
        for u_block, ul_block in zip(self.u_stream, self.ul_stream):
            u = u_block(u)
            ul = ul_block(ul, u)
            u_list.append(u)
            ul_list.append(ul)
        return u, ul


class _DownBlock(nn.Module):
    def __init__(self, nr_resnet: int, filters: int, dropout: float):
        super().__init__()
        self.u_stream = nn.ModuleList([GatedResnet(filters, DownShiftedConv2d, 1, dropout) for _ in range(nr_resnet)])
        self.ul_stream = nn.ModuleList([GatedResnet(filters, DownRightShiftedConv2d, 2, dropout)
                                        for _ in range(nr_resnet)])

    def forward(self, u, ul, u_list: list, ul_list: list):
        for u_block, ul_block in zip(self.u_stream, self.ul_stream):
            u = u_block(u, u_list.pop())
            ul = ul_block(ul, torch.cat([u, ul_list.pop()], dim=1))
        return u, ul


class PixelCNNpp(nn.Module):
    """PixelCNN++: ``forward(x (B, 3, H, W) in [-1, 1]) -> DMOL parameters (B, 10 K, H, W)``."""

    def __init__(self, cfg: PixelCNNConfig | None = None):
        super().__init__()
        cfg = cfg or PixelCNNConfig()
        self.cfg = cfg
        f, r, p = cfg.nr_filters, cfg.nr_resnet, cfg.dropout
        self.u_init = DownShiftedConv2d(4, f, (2, 3))
        self.ul_init = nn.ModuleList([DownShiftedConv2d(4, f, (1, 3)), DownRightShiftedConv2d(4, f, (2, 1))])
        self.up_layers = nn.ModuleList([_UpBlock(r, f, p) for _ in range(3)])
        self.downsize_u_stream = nn.ModuleList([DownShiftedConv2d(f, f, stride=2) for _ in range(2)])
        self.downsize_ul_stream = nn.ModuleList([DownRightShiftedConv2d(f, f, stride=2) for _ in range(2)])
        self.down_layers = nn.ModuleList([_DownBlock(n, f, p) for n in (r, r + 1, r + 1)])
        self.upsize_u_stream = nn.ModuleList([DownShiftedDeconv2d(f, f) for _ in range(2)])
        self.upsize_ul_stream = nn.ModuleList([DownRightShiftedDeconv2d(f, f) for _ in range(2)])
        self.nin_out = Nin(f, 10 * cfg.nr_logistic_mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % 4 or x.shape[3] % 4:
            raise OEError(f"PixelCNN++ takes (B, 3, H, W) images with H and W multiples of 4, got {tuple(x.shape)}")
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        u = down_shift(self.u_init(x))
        ul = down_shift(self.ul_init[0](x)) + right_shift(self.ul_init[1](x))
        u_list, ul_list = [u], [ul]
        for i, block in enumerate(self.up_layers):
            u, ul = block(u, ul, u_list, ul_list)
            if i < 2:
                u, ul = self.downsize_u_stream[i](u), self.downsize_ul_stream[i](ul)
                u_list.append(u)
                ul_list.append(ul)
        u, ul = u_list.pop(), ul_list.pop()
        for i, block in enumerate(self.down_layers):
            u, ul = block(u, ul, u_list, ul_list)
            if i < 2:
                u, ul = self.upsize_u_stream[i](u), self.upsize_ul_stream[i](ul)
        with torch.autocast(device_type=ul.device.type, enabled=False):
            return self.nin_out(elu(ul.float()))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "PixelCNNpp":
        """The network a run's ``config.json`` describes (its PixelCNNConfig fields; other keys are ignored)."""
        return cls(config_from_dict(PixelCNNConfig, dict(config)))

    def log_prob(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image log-likelihood in nats of ``x`` ([-1, 1] grid images): the exact DMOL likelihood.

        ``out`` is ``self(x)`` when the caller has already run the network, e.g. through a DDP or
        ``torch.compile`` wrapper, whose ``forward`` is the only method it wraps.
        """
        return dmol_log_prob(self(x) if out is None else out, x)

