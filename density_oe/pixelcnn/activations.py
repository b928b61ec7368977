"""``concat_elu`` fused with element-wise dropout: one autograd node, one saved tensor.

``concat_elu(x) = elu(cat([x, -x], channel dim))`` doubles the channels.  With ``e = exp(-|x|) - 1``,
``elu(x) = max(x, e)`` and ``elu(-x) = max(-x, e)``: one ``exp`` per output pair and no ``expm1``, which is
unvectorised on some CPUs.  ``exp(t) - 1`` differs from ``expm1(t)`` by at most 6e-8.  The two channel blocks are
written through a 5-D view, ``(B, 2, C, H, W)`` for NCHW tensors and ``(B, H, W, 2, C)`` for channels_last ones,
never as channel halves of a channels_last tensor (slow on CPUs), with no ``-x``/``cat`` copies.  The zero padding of the convolution that reads the result is written here too (a zero
border around the output: ``elu(0) = 0``), which saves a padded copy in the forward or backward pass.

Dropout (training only).  On CPUs the eager kernel multiplies by a float mask ``keep / (1 - p)`` built from raw
random bits (cheaper than ``bernoulli_`` or ``native_dropout`` there: docs/performance.md).  At ``p = 0.5`` (the
paper's rate) one random bit per element decides (16x fewer random numbers than the general case); at other rates
16 bits per element (``keep`` iff the 16-bit integer is at or above ``p * 65536``), so ``p`` is rounded to a
multiple of 1/65536.  Elsewhere (CUDA) the eager kernel calls ``torch.native_dropout``: one fused kernel that
draws, masks and scales (the bit trick's int64 draws, byte views and uint8 arithmetic cost about six full passes
there) and keeps a bool mask.  Either way the numbers come from the default generator of the tensor's device, so
runs are reproducible under ``torch.manual_seed``, and CUDA-graph replays draw fresh ones.

Backward needs only the output ``z`` (which the next convolution saves anyway) and the mask: ``elu'(y) =
min(y, 0) + 1``, and with the mask ``m`` in ``{0, s}`` (``s = 1/(1-p)``; ``z = m elu(y)`` is 0 where ``m`` is),
``m elu'(y) = min(z, 0) + m``, so ``dx = g_1 (min(z_1, 0) + m_1) - g_2 (min(z_2, 0) + m_2)`` over the two blocks.

Under ``torch.compile`` the function is written with composite ops (``cat``, ``elu``, ``native_dropout``) that the
compiler fuses itself (its tracer does not follow the in-place writes of the eager kernel).  Inductor lowers
``native_dropout`` to its own random numbers fused with the ELU (``fallback_random=False``, the default), so there
the masks differ from eager ones and only the keep rate is the same; with ``fallback_random=True`` (or the
``aot_eager`` backend of the tests) the compiled step calls torch's ``native_dropout`` kernel and draws the eager
CUDA kernel's masks (on CPUs: the masks of the eager kernel with ``RANDOM_BITS_DEVICE_TYPES`` emptied).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _random_words(n: int, device: torch.device) -> torch.Tensor:
    """``n`` random 64-bit words from the default generator of ``device``."""
    return torch.randint(-2 ** 63, 2 ** 63 - 1, (n,), dtype=torch.int64, device=device)


def _half_mask(like: torch.Tensor) -> torch.Tensor:
    """The ``p = 0.5`` mask (values 0 and 2) from one random bit per element: each random byte is split into its 8
    bits with one broadcast ``&``, then ``min(bit, 1) * 2`` (uint8 arithmetic, one conversion to the float type)."""
    n = like.numel()
    octets = _random_words((n + 63) // 64, like.device).view(torch.uint8)
    values = 1 << torch.arange(8, dtype=torch.uint8, device=like.device)   # built on the device: no host copy
    bits = torch.bitwise_and(octets.unsqueeze(-1), values).view(-1)[:n]
    mask = bits.clamp_(max=1).mul_(2).as_strided(like.shape, like.stride())
    return mask.to(like.dtype)


def dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Float mask shaped and laid out like the dense tensor ``like``: ``1/(1-p)`` with probability ``1 - p``
    (``p`` rounded to a multiple of 1/65536), else 0.  Built with integer and float arithmetic only (comparisons to
    bool and bool-to-float conversions are slower on CPUs)."""
    if p == 0.5:
        return _half_mask(like)
    n = like.numel()
    bits = _random_words((n + 3) // 4, like.device)
    threshold = round(p * 65536) - 32768                      # keep the 16-bit integers >= threshold
    level = bits.view(torch.int16)[:n].as_strided(like.shape, like.stride()).to(torch.float32)
    mask = level.sub_(threshold - 0.5).sign_().clamp_(min=0).mul_(1.0 / (1.0 - p))
    return mask.to(like.dtype)


RANDOM_BITS_DEVICE_TYPES = frozenset({"cpu"})   # eager dropout masks from raw random bits (faster on CPUs)


def _dropout_(out: torch.Tensor, p: float, fmt: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """``out`` with dropout applied (in place for the random-bit mask) and the mask the backward reads: a float
    mask in ``{0, 1/(1-p)}`` (random bits) or ``native_dropout``'s bool mask of kept elements."""
    if out.device.type in RANDOM_BITS_DEVICE_TYPES:
        mask = dropout_mask(out, p)
        return out.mul_(mask), mask
    dropped, keep = torch.native_dropout(out, p, True)
    return dropped.contiguous(memory_format=fmt), keep


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _halves(t: torch.Tensor, channels_last: bool, pad: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``elu(x)`` and ``elu(-x)`` blocks of a dense ``(B, 2C, H', W')`` tensor, without the ``pad`` border
    (``(left, right, top, bottom)``), as views ``(B, H, W, C)`` (channels_last) or ``(B, C, H, W)``."""
    b, c2, hp, wp = t.shape
    left, right, top, bottom = pad
    rows, cols = slice(top, hp - bottom), slice(left, wp - right)
    if channels_last:
        blocks = t.permute(0, 2, 3, 1).view(b, hp, wp, 2, c2 // 2)[:, rows, cols]
        return blocks[..., 0, :], blocks[..., 1, :]
    blocks = t.view(b, 2, c2 // 2, hp, wp)[..., rows, cols]
    return blocks[:, 0], blocks[:, 1]


class _ConcatEluDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, train: bool, pad: tuple[int, int, int, int]) -> torch.Tensor:
        cl = _is_channels_last(x)
        b, c, h, w = x.shape
        shape = (b, 2 * c, h + pad[2] + pad[3], w + pad[0] + pad[1])
        fmt = torch.channels_last if cl else torch.contiguous_format
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
        left, right, top, bottom = pad
        for border in (out[:, :, :top], out[:, :, shape[2] - bottom:], out[:, :, :, :left],
                       out[:, :, :, shape[3] - right:]):
            if border.numel():
                border.zero_()
        base = x.permute(0, 2, 3, 1) if cl else x
        pos, neg = _halves(out, cl, pad)
        e = base.abs().clamp_(max=80.0).neg_().exp_().sub_(1.0)   # e^-80 - 1 = -1: no denormals
        torch.maximum(base, e, out=pos)
        torch.maximum(base.neg(), e, out=neg)
        mask = None
        if train and p > 0:
            out, mask = _dropout_(out, p, fmt)
        ctx.channels_last, ctx.pad, ctx.scale = cl, pad, 1.0 / (1.0 - p)
        ctx.save_for_backward(out, mask)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        out, mask = ctx.saved_tensors
        # m elu'(y) = min(z, 0) + m for the mask m in {0, s} (z = m elu(y) is 0 where m is 0): two passes
        d = out.clamp(max=0)
        if mask is None:
            d.add_(1.0)
        elif mask.dtype == torch.bool:      # native_dropout's kept elements: m = keep * s
            d.add_(mask, alpha=ctx.scale)
        else:
            d.add_(mask)
        d.mul_(grad)
        pos, neg = _halves(d, ctx.channels_last, ctx.pad)
        dx = pos - neg
        return (dx.permute(0, 3, 1, 2) if ctx.channels_last else dx), None, None, None


class _Elu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.maximum(x, x.abs().clamp_(max=80.0).neg_().exp_().sub_(1.0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return y.clamp(max=0).add_(1.0).mul_(grad)


def elu(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) = max(x, exp(-|x|) - 1)``, with the same exp-only arithmetic as :func:`concat_elu`."""
    if torch.compiler.is_compiling():
        return F.elu(x)
    return _Elu.apply(x)


def concat_elu(x: torch.Tensor, dropout: float = 0.0, training: bool = False,
               pad: tuple[int, int, int, int] = (0, 0, 0, 0)) -> torch.Tensor:
    """``dropout(elu(cat([x, -x], 1)))`` (dropout only when ``training`` and ``dropout > 0``), surrounded by a zero
    border of ``pad = (left, right, top, bottom)`` pixels (the same as zero-padding ``x`` first: elu(0) = 0)."""
    if torch.compiler.is_compiling():
        out = F.elu(torch.cat([F.pad(x, pad), -F.pad(x, pad)], dim=1))
        return torch.native_dropout(out, dropout, True)[0] if training and dropout > 0 else out   # fused by Inductor
    return _ConcatEluDropout.apply(x, dropout, training, tuple(pad))
