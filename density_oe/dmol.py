"""Discretized mixture of logistics (DMOL) with RGB channel coupling: the PixelCNN++ likelihood.

Parameter layout (as in the original TF code and the pclucas14 port), per pixel, ``10*K`` channels:
``[0, K)`` mixture logits, then for each colour channel ``c`` in R, G, B a block of ``3*K``: ``K`` means,
``K`` log-scales and ``K`` raw coefficients.  Coefficients go through tanh; log-scales are clamped at -7.
The coefficient slots of R, G and B hold alpha, beta and gamma of the channel coupling (per component k)::

    mu_R = m_R,   mu_G = m_G + alpha * x_R,   mu_B = m_B + beta * x_R + gamma * x_G

Pixel values are the 256 grid points of [-1, 1] (spacing 2/255), so a bin has half-width 1/255.  With
``s = exp(log_scale)``, ``plus = (x - mu + 1/255)/s`` and ``minus = (x - mu - 1/255)/s`` the log-probability of one
sub-pixel under one component is::

    x < -0.999 (value 0):     log sigmoid(plus)                   (mass from -inf to the upper bin edge)
    x >  0.999 (value 255):   -softplus(minus)                    (mass from the lower bin edge to +inf)
    otherwise, if D > 1e-5:   log D,  D = sigmoid(plus) - sigmoid(minus)
    otherwise (D <= 1e-5):    log_pdf(centre) - log(127.5)        (density at the bin centre times the bin width)

The three channels are summed within a component, ``log_softmax(logits)`` is added, and a logsumexp over the
``K`` components gives the per-pixel log-likelihood; the per-image value sums over pixels (nats).

Implementation: one custom autograd function computes the forward one colour channel at a time on ``(B, K, H, W)``
tensors (never the six-dimensional ``(B, H, W, 3, K)`` tensors of the reference) and saves only the
``(B, K, H, W)`` per-component log-probabilities; the backward recomputes the per-channel terms and writes the
analytic gradient straight into one preallocated tensor.  The branch selection, thresholds and formulas are those
of the reference, so values agree with it to float32 rounding.  Everything runs in float32 with autocast disabled.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from oe_core.errors import OEError

HALF_BIN = 1.0 / 255.0
EDGE = 0.999
TINY_MASS = 1e-5
LOG_HALF_BINS = math.log(127.5)
MIN_LOG_SCALE = -7.0
PARAMS_PER_MIX = 10  # 1 logit + 3 channels x (mean, log-scale, coefficient)


def num_mixtures(params: torch.Tensor) -> int:
    """Number of mixture components ``K`` of a ``(B, 10K, H, W)`` parameter tensor."""
    if params.dim() != 4 or params.shape[1] % PARAMS_PER_MIX:
        raise OEError(f"DMOL parameters must have shape (B, 10*K, H, W), got {tuple(params.shape)}")
    return params.shape[1] // PARAMS_PER_MIX


def _check(params: torch.Tensor, x: torch.Tensor) -> int:
    k = num_mixtures(params)
    b, _, h, w = params.shape
    if x.shape != (b, 3, h, w):
        raise OEError(f"DMOL: images of shape {tuple(x.shape)} do not match parameters of shape "
                      f"{tuple(params.shape)} (expected ({b}, 3, {h}, {w}))")
    if not x.is_floating_point():
        raise OEError(f"DMOL: images must be floats in [-1, 1], got dtype {x.dtype}")
    return k


def _split(params: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits (B, K, H, W)`` and ``rest (B, 3 channels, 3 kinds, K, H, W)`` (views)."""
    return params[:, :k], params[:, k:].unflatten(1, (3, 3, k))


def _channel_means(rest: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
    """Coupled means ``mu_R, mu_G, mu_B`` (each ``(B, K, H, W)``), using the true previous channels."""
    coef = torch.tanh(rest[:, :, 2])
    xr, xg = x[:, 0:1], x[:, 1:2]
    mu_r = rest[:, 0, 0]
    mu_g = torch.addcmul(rest[:, 1, 0], coef[:, 0], xr)
    mu_b = torch.addcmul(torch.addcmul(rest[:, 2, 0], coef[:, 1], xr), coef[:, 2], xg)
    return [mu_r, mu_g, mu_b]


def _channel_terms(x_c: torch.Tensor, mu: torch.Tensor, raw_log_scale: torch.Tensor):
    """Per-component quantities of one colour channel (all ``(B, K, H, W)`` but ``lo``/``hi`` ``(B, 1, H, W)``)."""
    log_scale = raw_log_scale.clamp(min=MIN_LOG_SCALE)
    inv_s = torch.exp(-log_scale)
    centred = x_c - mu
    plus = inv_s * (centred + HALF_BIN)
    minus = inv_s * (centred - HALF_BIN)
    sig_plus, sig_minus = torch.sigmoid(plus), torch.sigmoid(minus)
    delta = sig_plus - sig_minus
    mid = inv_s * centred
    lo, hi = x_c < -EDGE, x_c > EDGE
    return log_scale, inv_s, plus, minus, sig_plus, sig_minus, delta, mid, lo, hi


def _channel_log_prob(terms) -> torch.Tensor:
    log_scale, _, plus, minus, _, _, delta, mid, lo, hi = terms
    inner = torch.where(delta > TINY_MASS, torch.log(delta.clamp(min=1e-12)),
                        mid - log_scale - 2.0 * F.softplus(mid) - LOG_HALF_BINS)
    return torch.where(lo, F.logsigmoid(plus), torch.where(hi, -F.softplus(minus), inner))


def _channel_grads(terms) -> tuple[torch.Tensor, torch.Tensor]:
    """d log p / d mu and d log p / d log_scale (after the clamp) of one channel."""
    log_scale, inv_s, plus, minus, sp, sm, delta, mid, lo, hi = terms
    ok = delta > TINY_MASS
    safe = torch.where(ok, delta, torch.ones_like(delta))
    d_plus = torch.where(lo, 1.0 - sp, torch.where(hi, torch.zeros_like(sp), sp * (1.0 - sp) / safe))
    d_minus = torch.where(lo, torch.zeros_like(sm), torch.where(hi, -sm, -sm * (1.0 - sm) / safe))
    d_mu = -inv_s * (d_plus + d_minus)
    d_ls = -(plus * d_plus + minus * d_minus)
    tiny = ~(lo | hi | ok)
    d_mid = 1.0 - 2.0 * torch.sigmoid(mid)
    d_mu = torch.where(tiny, -inv_s * d_mid, d_mu)
    d_ls = torch.where(tiny, -mid * d_mid - 1.0, d_ls)
    return d_mu, d_ls


class _DMOLLogProb(torch.autograd.Function):
    """Per-image log-likelihood with an analytic, memory-lean backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, params: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
        logits, rest = _split(params, k)
        comp = torch.log_softmax(logits, dim=1)
        for c, mu in enumerate(_channel_means(rest, x)):
            comp = comp + _channel_log_prob(_channel_terms(x[:, c:c + 1], mu, rest[:, c, 1]))
        ctx.k = k
        ctx.save_for_backward(params, x, comp)
        return torch.logsumexp(comp, dim=1).sum(dim=(1, 2))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        params, x, comp = ctx.saved_tensors
        k = ctx.k
        with torch.autocast(device_type=params.device.type, enabled=False):
            logits, rest = _split(params, k)
            go = grad_out.view(-1, 1, 1, 1)
            resp = torch.softmax(comp, dim=1) * go                      # responsibilities x upstream grad
            grad = torch.empty_like(params)
            g_logits, g_rest = _split(grad, k)
            g_logits.copy_(resp - torch.softmax(logits, dim=1) * go)
            coef = torch.tanh(rest[:, :, 2])
            g_mu = []
            for c, mu in enumerate(_channel_means(rest, x)):
                raw_ls = rest[:, c, 1]
                d_mu, d_ls = _channel_grads(_channel_terms(x[:, c:c + 1], mu, raw_ls))
                g_mu.append(resp * d_mu)
                g_rest[:, c, 0].copy_(g_mu[c])
                g_rest[:, c, 1].copy_(torch.where(raw_ls >= MIN_LOG_SCALE, resp * d_ls, torch.zeros_like(d_ls)))
            xr, xg = x[:, 0:1], x[:, 1:2]
            dtanh = 1.0 - coef * coef
            g_rest[:, 0, 2].copy_(g_mu[1] * xr * dtanh[:, 0])
            g_rest[:, 1, 2].copy_(g_mu[2] * xr * dtanh[:, 1])
            g_rest[:, 2, 2].copy_(g_mu[2] * xg * dtanh[:, 2])
            g_x = None
            if ctx.needs_input_grad[1]:
                g_x = torch.stack([
                    (-g_mu[0] + coef[:, 0] * g_mu[1] + coef[:, 1] * g_mu[2]).sum(1),
                    (-g_mu[1] + coef[:, 2] * g_mu[2]).sum(1),
                    (-g_mu[2]).sum(1)], dim=1)
        return grad, g_x, None


def log_prob(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image log-likelihood in nats, shape ``[B]``, of images ``x`` ``(B, 3, H, W)`` in [-1, 1] under the DMOL
    with parameters ``params`` ``(B, 10K, H, W)``.  Always computed in float32, also under autocast."""
    k = _check(params, x)
    with torch.autocast(device_type=params.device.type, enabled=False):
        return _DMOLLogProb.apply(params.float(), x.float(), k)


def bits_per_dim(log_likelihood: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Negative log-likelihood in nats -> bits per dimension: ``-ll / (num_dims * ln 2)``."""
    return -log_likelihood / (num_dims * math.log(2.0))


def nll_bpd(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image negative log-likelihood in bits per dimension, shape ``[B]``."""
    return bits_per_dim(log_prob(params, x), x[0].numel())


def sample(params: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw ``(B, 3, H, W)`` values in [-1, 1] from the DMOL at every position of ``params``.

    As the original code: Gumbel-max picks a component (uniforms in [1e-5, 1 - 1e-5]), a logistic draw gives each
    channel, R, G, B in turn with the coupled means, clipped to [-1, 1]; values are not rounded to the 8-bit grid.
    Random numbers are drawn on the CPU from ``generator`` so samples do not depend on the device.
    """
    k = num_mixtures(params)
    params = params.float()
    b, _, h, w = params.shape
    logits, rest = _split(params, k)

    def uniform(*shape: int) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float32)
        return (u * (1.0 - 2e-5) + 1e-5).to(params.device)

    gumbel = -torch.log(-torch.log(uniform(b, k, h, w)))
    choice = (logits + gumbel).argmax(dim=1, keepdim=True)                       # (B, 1, H, W)
    pick = lambda t: t.gather(1, choice).squeeze(1)                               # noqa: E731
    u = uniform(b, 3, h, w)
    noise = torch.log(u) - torch.log1p(-u)
    out = []
    for c in range(3):
        mu = pick(rest[:, c, 0])
        if c == 1:
            mu = mu + pick(torch.tanh(rest[:, 0, 2])) * out[0]
        elif c == 2:
            mu = mu + pick(torch.tanh(rest[:, 1, 2])) * out[0] + pick(torch.tanh(rest[:, 2, 2])) * out[1]
        scale = torch.exp(pick(rest[:, c, 1]).clamp(min=MIN_LOG_SCALE))
        out.append((mu + scale * noise[:, c]).clamp(-1.0, 1.0))
    return torch.stack(out, dim=1)
