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

Implementation: one custom autograd function.  Its forward works one colour channel at a time on ``(B, K, H, W)``
views of the parameters (no broadcast zeros, no permuted copies, temporaries a third of the reference's), selects branches with exact 0/1 ``lerp``s and broadcast ``where``s instead
of float-mask arithmetic, uses exp/log forms of the log-sigmoids, and computes the local derivatives with respect
to the means and log-scales alongside the values; it saves those two tensors and the per-component
log-probabilities ``(B, K, H, W)`` only.  The backward chains them with the mixture responsibilities and writes the
gradient straight into one preallocated tensor (no recomputation, no autograd graph of ~40 intermediates).
The branch selection, thresholds and formulas are those of the reference, so values agree with it to float32
rounding.  Everything runs in float32 with autocast disabled.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from oe_core.errors import OEError


HALF_BIN = 1.0 / 255.0
EDGE = 0.999
TINY_MASS = 1e-5
LOG_HALF_BINS = math.log(127.5)
MIN_LOG_SCALE = -7.0
PARAMS_PER_MIX = 10  # 1 logit + 3 channels x (mean, log-scale, coefficient)
DENORMAL_GUARD = 80.0  # exp(-80) = 1.8e-35 is a normal float32; exp(-88) and below are denormal or zero


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


def _tanh(t: torch.Tensor) -> torch.Tensor:
    """tanh as ``2 sigmoid(2t) - 1``, faster than ``torch.tanh`` on CPUs; 1e-7 absolute error."""
    return torch.sigmoid(t * 2.0).mul_(2.0).sub_(1.0)


def _channel_means(rest: torch.Tensor, coef: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
    """Means ``mu_R, mu_G, mu_B`` (each ``(B, K, H, W)``) with the channel coupling, from the true previous
    channels."""
    xr, xg = x[:, 0:1], x[:, 1:2]
    mu_g = torch.addcmul(rest[:, 1, 0], coef[:, 0], xr)
    mu_b = torch.addcmul(rest[:, 2, 0], coef[:, 1], xr).addcmul_(coef[:, 2], xg)
    return [rest[:, 0, 0], mu_g, mu_b]


def _log_sigmoid(t: torch.Tensor) -> torch.Tensor:
    """``log sigmoid(t) = min(t, 0) - log(1 + exp(-|t|))`` with exp/log only.

    ``log1p`` and ``softplus`` are slow on CPUs without vectorised versions; the absolute difference is below
    1.2e-7.  ``|t|`` is capped at 80 inside the exp.  That changes nothing in float32 (``log(1 + e^-80) = 0``) but
    keeps ``exp`` away from denormal results, which are very slow on x86 CPUs."""
    return t.clamp(max=0).sub_(t.abs().clamp_(max=DENORMAL_GUARD).neg_().exp_().add_(1.0).log_())


def _step(t: torch.Tensor) -> torch.Tensor:
    """``1.`` where ``t > 0``, else ``0.`` (float), via ``sign`` and ``clamp``: bool results and their conversion
    to floats are slower on CPUs."""
    return t.sign_().clamp_(min=0)


def _channel(x_c: torch.Tensor, mu: torch.Tensor, raw_ls: torch.Tensor, d_mu: torch.Tensor | None = None,
             d_ls: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probabilities ``(B, K, H, W)`` of one colour channel under each component (``x_c`` is ``(B, 1, H, W)``).
    When ``d_mu`` and ``d_ls`` are given, their derivatives with respect to ``mu`` and the raw (unclamped)
    log-scale are written into them.

    Branches are selected with 0/1 float masks through ``torch.lerp`` and in-place products, which are exact at
    weights 0 and 1 for finite operands (every branch value here is finite) and much faster than ``torch.where``
    on CPUs."""
    lo = _step(-EDGE - x_c)                                                   # value 0     (B, 1, H, W)
    hi = _step(x_c - EDGE)                                                    # value 255
    interior = 1.0 - lo - hi
    ls = raw_ls.clamp(min=MIN_LOG_SCALE)
    inv_s = ls.neg().exp_()
    centred = x_c - mu
    plus = (centred + HALF_BIN).mul_(inv_s)
    minus = (centred - HALF_BIN).mul_(inv_s)
    mid = centred.mul_(inv_s)
    # sigmoids below 1.8e-35 are raised to it (no denormals); they only ever enter as tiny additive terms
    sp = plus.clamp(min=-DENORMAL_GUARD).sigmoid_()
    sm = minus.clamp(min=-DENORMAL_GUARD).sigmoid_()
    delta = sp - sm
    ok = _step(delta - TINY_MASS)                                             # the bin's mass is used
    # bin centre: log sigmoid(m) + log sigmoid(-m) - log s - log 127.5 = -|m| - 2 log(1 + e^-|m|) - log s - ...
    a = mid.abs()
    log_centre = a.clamp(max=DENORMAL_GUARD).neg_().exp_().add_(1.0).log_().mul_(2.0).add_(a).add_(ls)
    value = torch.lerp(log_centre.add_(LOG_HALF_BINS).neg_(), delta.clamp(min=1e-12).log_(), ok)
    # edge bins: log sigmoid(plus) for value 0, log(1 - sigmoid(minus)) = log sigmoid(-minus) for value 255
    value = torch.lerp(value, _log_sigmoid(torch.lerp(minus.neg(), plus, lo)), 1.0 - interior)
    if d_mu is None or d_ls is None:
        return value
    # d value / d plus and d value / d minus per case; the bin-centre case as dp = dm = (d / d mid) / 2
    not_ok = 1.0 - ok
    inv_delta = (delta + not_ok).reciprocal_()                               # 1/delta where used, finite elsewhere
    d_mid = mid.clamp(min=-DENORMAL_GUARD).sigmoid_().neg_().add_(0.5)
    dp = torch.lerp(d_mid, (1.0 - sp).mul_(sp).mul_(inv_delta), ok)
    dm = torch.lerp(d_mid, (sm - 1.0).mul_(sm).mul_(inv_delta), ok)
    dp = torch.lerp(dp, sp.neg_().add_(1.0), lo).mul_(1.0 - hi)             # value 0: 1 - sp; value 255: 0
    dm = torch.lerp(dm, sm.neg_(), hi).mul_(1.0 - lo)                        # value 0: 0; value 255: -sm
    torch.add(dp, dm, out=d_mu).mul_(inv_s).neg_()
    torch.mul(plus, dp, out=d_ls).add_(minus.mul_(dm)).neg_()
    d_ls.sub_(not_ok.mul_(interior))                                          # the -log s of the bin-centre case
    d_ls.mul_(_step(MIN_LOG_SCALE - raw_ls).neg_().add_(1.0))               # no gradient through the clamp at -7
    return value


class _DMOLLogProb(torch.autograd.Function):
    """Per-image log-likelihood; the forward also stores the local derivatives, the backward only chains them."""

    @staticmethod
    def forward(ctx, params: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        logits, rest = _split(params, k)
        coef = _tanh(rest[:, :, 2])
        comp = torch.log_softmax(logits, dim=1)
        d_mu = torch.empty_like(rest[:, :, 0]) if grads else None                   # (B, 3, K, H, W)
        d_ls = torch.empty_like(rest[:, :, 1]) if grads else None
        for c, mu in enumerate(_channel_means(rest, coef, x)):      # one channel at a time: small temporaries
            comp.add_(_channel(x[:, c:c + 1], mu, rest[:, c, 1], d_mu[:, c] if grads else None,
                               d_ls[:, c] if grads else None))
        top = comp.amax(dim=1, keepdim=True)
        lse = (comp - top).clamp_(min=-DENORMAL_GUARD).exp_().sum(dim=1, keepdim=True).log_().add_(top)
        ctx.k = k
        if grads:
            ctx.save_for_backward(logits, coef, x, comp, lse, d_mu, d_ls)
        return lse.sum(dim=(1, 2, 3))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        logits, coef, x, comp, lse, d_mu, d_ls = ctx.saved_tensors
        b, k = comp.shape[:2]
        go = grad_out.view(-1, 1, 1, 1)
        # responsibilities x upstream gradient; those below 1.8e-35 are raised to it (no denormal arithmetic)
        resp = comp.sub(lse).clamp_(min=-DENORMAL_GUARD).exp_().mul_(go)
        grad = torch.empty((b, PARAMS_PER_MIX * k, *comp.shape[2:]), dtype=comp.dtype, device=comp.device)
        g_logits, g_rest = _split(grad, k)
        torch.sub(resp, torch.softmax(logits, dim=1).mul_(go), out=g_logits)
        g_mu = torch.mul(d_mu, resp.unsqueeze(1), out=g_rest[:, :, 0])
        torch.mul(d_ls, resp.unsqueeze(1), out=g_rest[:, :, 1])
        xr, xg = x[:, 0:1], x[:, 1:2]
        dtanh = 1.0 - coef * coef
        torch.mul(g_mu[:, 1] * xr, dtanh[:, 0], out=g_rest[:, 0, 2])
        torch.mul(g_mu[:, 2] * xr, dtanh[:, 1], out=g_rest[:, 1, 2])
        torch.mul(g_mu[:, 2] * xg, dtanh[:, 2], out=g_rest[:, 2, 2])
        g_x = None
        if ctx.needs_input_grad[1]:
            g_x = torch.stack([
                (coef[:, 0] * g_mu[:, 1] + coef[:, 1] * g_mu[:, 2] - g_mu[:, 0]).sum(1),
                (coef[:, 2] * g_mu[:, 2] - g_mu[:, 1]).sum(1),
                (-g_mu[:, 2]).sum(1)], dim=1)
        return grad, g_x, None


def _channel_traced(x_c: torch.Tensor, mu: torch.Tensor, raw_ls: torch.Tensor) -> torch.Tensor:
    """:func:`_channel`'s values with out-of-place ops and ``torch.where`` (what ``torch.compile`` traces: no
    ``out=`` writes; the compiler fuses the passes and autograd derives the backward)."""
    ls = raw_ls.clamp(min=MIN_LOG_SCALE)
    inv_s = torch.exp(-ls)
    centred = x_c - mu
    plus = (centred + HALF_BIN) * inv_s
    minus = (centred - HALF_BIN) * inv_s
    a = (centred * inv_s).abs()
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_centre = -(2.0 * torch.log1p(torch.exp(-a)) + a + ls + LOG_HALF_BINS)
    interior = torch.where(delta > TINY_MASS, torch.log(delta.clamp(min=1e-12)), log_centre)
    edge = torch.where(x_c < -EDGE, F.logsigmoid(plus), F.logsigmoid(-minus))
    return torch.where((x_c < -EDGE) | (x_c > EDGE), edge, interior)


def sub_pixel_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Log-probability of every sub-pixel of ``x`` under one discretised logistic ``(mean, log_scale)`` per
    sub-pixel (no mixture, no channel coupling), all tensors of one shape: the per-component term of the DMOL with
    the same bins, edge cases and thresholds (:func:`_channel_traced`), element-wise and differentiable by
    autograd (also under ``torch.func`` transforms)."""
    return _channel_traced(x.float(), mean.float(), log_scale.float())


def _log_prob_traced(params: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """The same per-image log-likelihood as :class:`_DMOLLogProb`, as one traceable expression (autograd's own
    backward): the path taken under ``torch.compile``, where the custom function's ``out=`` writes would break
    the graph.  Values and gradients agree with the kernel's to float32 rounding (tested)."""
    logits, rest = _split(params, k)
    coef = torch.tanh(rest[:, :, 2])
    comp = torch.log_softmax(logits, dim=1)
    for c, mu in enumerate(_channel_means(rest, coef, x)):
        comp = comp + _channel_traced(x[:, c:c + 1], mu, rest[:, c, 1])
    return torch.logsumexp(comp, dim=1).sum(dim=(1, 2))


def log_prob(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image log-likelihood in nats, shape ``[B]``, of images ``x`` ``(B, 3, H, W)`` in [-1, 1] under the DMOL
    with parameters ``params`` ``(B, 10K, H, W)``.  Always computed in float32, also under autocast.

    The computation runs on NCHW-contiguous tensors (channels_last parameters are copied once: per-component
    slices of a channels_last tensor are 10-element strided runs, slow for every element-wise pass)."""
    k = _check(params, x)
    with torch.autocast(device_type=params.device.type, enabled=False):
        if torch.compiler.is_compiling():
            return _log_prob_traced(params.float(), x.float(), k)
        return _DMOLLogProb.apply(params.float().contiguous(), x.float().contiguous(), k)


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
    chosen = rest.gather(3, choice[:, None, None].expand(-1, 3, 3, -1, -1, -1)).squeeze(3)   # (B, 3, 3, H, W)
    mean, log_scale, coef = chosen[:, :, 0], chosen[:, :, 1].clamp(min=MIN_LOG_SCALE), torch.tanh(chosen[:, :, 2])
    u = uniform(b, 3, h, w)
    draw = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    r = draw[:, 0].clamp(-1.0, 1.0)
    g = (draw[:, 1] + coef[:, 0] * r).clamp(-1.0, 1.0)
    out = [r, g, (draw[:, 2] + coef[:, 1] * r + coef[:, 2] * g).clamp(-1.0, 1.0)]
    return torch.stack(out, dim=1)
