"""Likelihood Regret (Xiao, Yan & Amit, NeurIPS 2020) as the density detector ``likelihood_regret``.

For a test image ``x``, re-optimise a copy of the **encoder** alone on ``x`` (the decoder is frozen) and score
how much the bound improves::

    LR(x) = NLL_before(x) - NLL_after(x) = (L_K(x; phi*_x) - L_K(x; phi)) / (D ln 2)   bits/dim, higher = more OOD

The procedure of the authors' ``compute_LR.py`` (XavierXiao/Likelihood-Regret ``5517c9b``):

* 100 steps of Adam, lr 2e-4, betas (0.9, 0.999), weight decay 5e-5 (added to the gradient, as
  ``torch.optim.Adam``), on the encoder copy of one image (batch 1), starting from the trained encoder;
* the objective: the single-sample ELBO with the analytic KL, a fresh posterior draw each step;
* the encoder in eval mode (this VAE has no BatchNorm, so nothing else changes).

Batched: each image of a batch gets its own copy of every encoder parameter (tensors with a leading image
dimension), the encoder runs on all of them in one call through ``torch.func.vmap`` of ``functional_call``, and
the summed objective's gradient with respect to the stacked copies is every image's own gradient (an image's
term depends only on its own copy).  Adam runs element-wise on the stacked tensors.  The model itself is not
touched (no parameter, buffer or mode changes).

Deliberate differences from the authors' code:

* ``L_K`` before and after uses the model's own ``K`` (``iw_samples``, from ``--vae-iw-samples``; K = 1: the
  ELBO) with the model's fixed evaluation draws, not a fresh IWAE with 1000 samples: the same draws before and
  after, so the gain is not blurred by the bound's sampling noise, and the cost stays affordable on CPUs.  Set
  ``iw_samples`` to score with another ``K``.
* The per-step posterior draws come from a generator seeded per step, the same for every image, so an image's
  score does not depend on its batch (the authors draw from the global generator, batch 1).
* The score is in bits/dim (the suite's unit for density scores); the authors' is in nats per image.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.func import functional_call, vmap

from oe_core.detectors import Detector, register_detector
from oe_core.errors import ConfigError, OEError

from ..config import KIND
from ..units import bits_per_dim
from .bounds import LatentVariableModel, elbo

STEPS = 100
LR = 2e-4
BETAS = (0.9, 0.999)
WEIGHT_DECAY = 5e-5
ADAM_EPS = 1e-8
DRAW_SEED = 1


class StackedAdam:
    """``torch.optim.Adam`` (L2 weight decay in the gradient, bias-corrected moments) on tensors whose leading
    dimension holds independent per-image copies: element-wise, so every copy follows its own Adam."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], weight_decay: float,
                 eps: float = ADAM_EPS):
        self.params, self.lr, self.betas, self.wd, self.eps = params, lr, betas, weight_decay, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            g = g.add(p, alpha=self.wd) if self.wd else g
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


def regret_nats(model: LatentVariableModel, x: torch.Tensor, steps: int = STEPS, lr: float = LR,
                betas: tuple[float, float] = BETAS, weight_decay: float = WEIGHT_DECAY,
                iw_samples: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_K before, L_K after)`` ``[B]`` in nats: the bound with the trained encoder, and with a per-image copy
    of the encoder re-optimised on each image (see the module docstring).  ``model`` is left as it was."""
    if steps < 0:
        raise ConfigError(f"likelihood regret: steps must be >= 0, got {steps}")
    was_training = model.training
    model.eval()
    try:
        k = iw_samples or model.iw_samples
        enc = model.encoder
        with torch.no_grad():
            mu, logvar = model.encode(x)
            before = model.bound(x, mu, logvar, model.eval_noise(k, mu))
        names = [n for n, _ in enc.named_parameters()]
        stacked = [p.detach().unsqueeze(0).repeat(len(x), *[1] * p.dim()) for _, p in enc.named_parameters()]
        buffers = dict(enc.named_buffers())

        def encode_one(params: tuple, xi: torch.Tensor):
            m, lv = functional_call(enc, ({**dict(zip(names, params)), **buffers},), (xi[None],))
            return m[0], lv[0]

        encode_all = vmap(encode_one, in_dims=(0, 0))
        opt = StackedAdam(stacked, lr, betas, weight_decay)
        g = torch.Generator().manual_seed(DRAW_SEED)
        for _ in range(steps):
            eps = torch.randn((1, 1, *mu.shape[1:]), generator=g, dtype=mu.dtype).to(mu.device).expand(1, *mu.shape)
            with torch.enable_grad():
                leaves = [p.requires_grad_(True) for p in stacked]
                m, lv = encode_all(tuple(leaves), x)
                dtype = torch.promote_types(m.dtype, torch.float32)
                objective = elbo(lambda z: model.log_likelihood(z, x), m.to(dtype), lv.to(dtype), eps)
                grads = torch.autograd.grad(-objective.sum(), leaves)
            for p in stacked:
                p.requires_grad_(False)
            opt.step(list(grads))
        with torch.no_grad():
            m, lv = encode_all(tuple(stacked), x)
            dtype = torch.promote_types(m.dtype, torch.float32)
            m, lv = m.to(dtype), lv.to(dtype)
            after = model.bound(x, m, lv, model.eval_noise(k, m))
        return before, after
    finally:
        model.train(was_training)


@register_detector("likelihood_regret", kind=KIND, units="bpd(trained encoder) - bpd(re-optimised encoder) "
                                                         "(bits per dim)", paper_name="LR", needs_grad=True,
                   applies_to=lambda net: isinstance(net, LatentVariableModel),
                   description="gain of the VAE's bound when the encoder alone is re-optimised on the image (100 "
                               "Adam steps, lr 2e-4; Xiao et al. 2020)")
class LikelihoodRegret(Detector):
    """``LikelihoodRegret(vae)``: ``predict(x)`` = ``bpd_before(x) - bpd_after(x)`` (:func:`regret_nats`)."""

    def __init__(self, model, steps: int = STEPS, lr: float = LR, iw_samples: Optional[int] = None):
        if not isinstance(model, LatentVariableModel):
            raise OEError(f"detector 'likelihood_regret' scores VAEs (a model with an encoder), not a "
                          f"{type(model).__name__}")
        super().__init__(model)
        self.steps, self.lr, self.iw_samples = steps, lr, iw_samples

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        before, after = regret_nats(self.model, x, self.steps, self.lr, iw_samples=self.iw_samples)
        d = x[0].numel()
        return bits_per_dim(before.double(), d) - bits_per_dim(after.double(), d)
