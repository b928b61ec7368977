"""PixelCNN++ building blocks: shifted (causal) convolutions, 1x1 ``nin`` layers and the gated resnet.

Causality comes from shifts and one-sided padding instead of masks (as in the TF code):

* down-shifted convolutions (kernel ``kh x kw``, padded ``kh-1`` rows on top and ``(kw-1)/2`` columns each side) see
  only the current row and the rows above ("u" stream);
* down-right-shifted convolutions (padded on top and on the left) see the rows above and the pixels to the left
  ("ul" stream).

Everything here is weight-normalised (:class:`~density_oe.pixelcnn.weight_norm.WeightNormLayer`).  Speed choices (outputs
equal to the port's layers): 1x1 layers are batched matrix products (NCHW) or 1x1 convolutions (channels_last),
not permute + Linear; the shifted transposed
convolutions crop through ``padding``/``output_padding`` so they return contiguous tensors; ``concat_elu`` is fused
with the element-wise dropout and writes the zero padding of the convolution that follows
(:mod:`density_oe.pixelcnn.activations`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .activations import concat_elu
from .weight_norm import WeightNormLayer


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Shift the image down one row (the top row becomes zeros, the last row is dropped)."""
    return F.pad(x[:, :, :-1], (0, 0, 1, 0))


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Shift the image right one column (the first column becomes zeros, the last is dropped)."""
    return F.pad(x[:, :, :, :-1], (1, 0, 0, 0))


class _ShiftedConv(WeightNormLayer):
    """A weight-normalised convolution whose zero padding is given as ``(left, right, top, bottom)``.

    ``pad_input=False``: the caller has already padded (see :class:`GatedResnet`)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride: int, pad: tuple[int, int, int, int],
                 init_scale: float = 1.0):
        super().__init__((cout, cin, *kernel), out_dim=0, init_scale=init_scale)
        self.stride = stride
        self.pad = pad
        self.pad_input = True

    def apply_weight(self, x, weight, bias):
        if self.pad_input:
            x = F.pad(x, self.pad)
        return F.conv2d(x, weight, bias, self.stride)


class DownShiftedConv2d(_ShiftedConv):
    """Sees the rows above (``kh - 1`` of them) and the current row, centred horizontally."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (2, 3), stride: int = 1,
                 init_scale: float = 1.0):
        kh, kw = kernel
        super().__init__(cin, cout, kernel, stride, ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0), init_scale)


class DownRightShiftedConv2d(_ShiftedConv):
    """Sees the rows above and the pixels to the left (and the current position)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (2, 2), stride: int = 1,
                 init_scale: float = 1.0):
        kh, kw = kernel
        super().__init__(cin, cout, kernel, stride, (kw - 1, 0, kh - 1, 0), init_scale)


class _ShiftedDeconv(WeightNormLayer):
    """Stride-2 weight-normalised transposed convolution, cropped to the causal ``2H x 2W`` window.

    ``weight_v`` has PyTorch's transposed layout ``(cin, cout, kh, kw)``; ``weight_g`` holds one gain per *output*
    channel, as in the TF code.  (The port normalises per *input* channel, because ``weight_norm``'s ``dim=0``
    is the input dimension of a transposed convolution; :mod:`density_oe.port` converts.)
    """

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], col_crop: int):
        super().__init__((cin, cout, *kernel), out_dim=1)
        self.col_crop = col_crop

    def apply_weight(self, x, weight, bias):
        # Output rows 0..2H-1 (drop the last), columns col_crop..col_crop+2W-1 of the full transposed conv.
        c = self.col_crop
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=(0, c), output_padding=(0, c))


class DownShiftedDeconv2d(_ShiftedDeconv):
    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (2, 3)):
        super().__init__(cin, cout, kernel, col_crop=(kernel[1] - 1) // 2)


class DownRightShiftedDeconv2d(_ShiftedDeconv):
    def __init__(self, cin: int, cout: int, kernel: tuple[int, int] = (2, 2)):
        super().__init__(cin, cout, kernel, col_crop=0)


class Nin(WeightNormLayer):
    """Network-in-network layer: a weight-normalised 1x1 convolution.  NCHW inputs go through one batched matrix
    product ``W @ x[b]`` on the ``(C, H*W)`` planes, faster than the CPU convolution paths for these shapes, which
    zero-fill and reorder; channels_last inputs through oneDNN's convolution, already as fast."""

    def __init__(self, cin: int, cout: int):
        super().__init__((cout, cin, 1, 1), out_dim=0)

    def apply_weight(self, x, weight, bias):
        if not x.is_contiguous():
            return F.conv2d(x, weight, bias)
        b, c, h, w = x.shape
        mat = weight.view(1, -1, c).expand(b, -1, -1)
        planes = x.view(b, c, h * w)
        y = torch.bmm(mat, planes) if bias is None else torch.baddbmm(bias.view(1, -1, 1), mat, planes)
        return y.view(b, -1, h, w)


class GatedResnet(nn.Module):
    """``x + A * sigmoid(B)``, ``[A, B] = conv_out(dropout(concat_elu(conv_input(concat_elu(x)) + nin_skip(
    concat_elu(a)))))``; ``a`` is the auxiliary input (``skip`` times the channels of ``x``; none if ``skip=0``).
    ``conv_out`` starts at ``init_scale = 0.1`` under data-dependent init, as in the TF code."""

    def __init__(self, filters: int, conv: type[_ShiftedConv], skip: int = 0, dropout: float = 0.5):
        super().__init__()
        self.conv_input = conv(2 * filters, filters)
        self.nin_skip = Nin(2 * skip * filters, filters) if skip else None
        self.conv_out = conv(2 * filters, 2 * filters, init_scale=0.1)
        self.conv_input.pad_input = self.conv_out.pad_input = False
        self.dropout = dropout

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        pad = self.conv_input.pad
        c = self.conv_input(concat_elu(x, pad=pad))
        if self.nin_skip is not None:
            c = c + self.nin_skip(concat_elu(a))
        h = concat_elu(c, self.dropout, self.training, pad=pad)
        gate_a, gate_b = self.conv_out(h).chunk(2, dim=1)
        return torch.addcmul(x, gate_a, torch.sigmoid(gate_b))
