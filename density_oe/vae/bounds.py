"""Variational bounds on ``log p(x)`` for a latent-variable model with a diagonal Gaussian posterior, and the base
class every VAE of the suite derives from (:class:`LatentVariableModel`).

With prior ``p(z) = N(0, I)``, posterior ``q(z|x) = N(mu(x), diag(exp(logvar(x))))`` and ``z_k = mu + sigma eps_k``
(``eps_k ~ N(0, I)`` iid), the log importance weights are::

    log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)
            = log p(x | z_k) - 1/2 |z_k|^2 + 1/2 |eps_k|^2 + 1/2 sum(logvar)          (the 2 pi terms cancel)

and the importance-weighted bound (Burda, Grosse & Salakhutdinov 2016) is::

    L_K(x) = log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K   <=  log p(x)   (in expectation over eps)

``E[L_1] <= E[L_K] <= E[L_{K+1}] <= log p(x)``.  K = 1 is the ELBO; for it :func:`elbo` uses the analytic KL
``KL(q || p) = 1/2 sum(mu^2 + sigma^2 - 1 - logvar)`` instead of the sampled ``log p(z) - log q(z|x)``: the same
expectation, a lower-variance estimate (as the VAE paper and Likelihood Regret's code).

All bound arithmetic runs in float32 (float64 when the inputs are), outside autocast.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

EVAL_NOISE_SEED = 0


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per image ``[B]`` (sums over every latent dimension)."""
    kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``z = mu + exp(logvar / 2) * eps`` for ``eps`` of shape ``(K, *mu.shape)``: ``(K, B, ...)``."""
    return mu.unsqueeze(0) + (0.5 * logvar).exp().unsqueeze(0) * eps


def log_prior_minus_posterior(z: torch.Tensor, eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log p(z) - log q(z|x)`` ``(K, B)`` for ``z = mu + sigma eps`` (the ``2 pi`` terms cancel)."""
    d = 0.5 * (eps * eps - z * z) + 0.5 * logvar.unsqueeze(0)
    return d.flatten(2).sum(2)


def iw_bound(log_lik: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor,
             eps: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """The importance-weighted bound ``L_K`` ``[B]`` in nats from the posterior ``(mu, logvar)`` ``(B, ...)`` and
    the standard-normal draws ``eps`` ``(K, B, ...)``.

    ``log_lik(z)`` maps latents ``(N, ...)`` to ``log p(x|z)`` ``[N]`` for the images repeated in the same
    sample-major order (``z`` is ``(K', B, ...)`` flattened to ``K' * B``); it is called on ``chunk`` samples
    at a time (0: all ``K`` at once), so a large ``K`` needs ``chunk * B`` decoder images of memory.
    """
    k, b = eps.shape[:2]
    step = chunk if chunk > 0 else k
    parts = []
    for start in range(0, k, step):
        e = eps[start:start + step]
        z = reparameterize(mu, logvar, e)
        ll = log_lik(z.flatten(0, 1)).view(len(e), b)
        parts.append(ll + log_prior_minus_posterior(z, e, logvar))
    log_w = torch.cat(parts) if len(parts) > 1 else parts[0]
    return torch.logsumexp(log_w, dim=0) - math.log(k)


def elbo(log_lik: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor,
         eps: torch.Tensor) -> torch.Tensor:
    """One-sample ELBO ``log p(x|z) - KL(q(z|x) || p(z))`` ``[B]`` with the analytic KL (``eps``: ``(1, B, ...)``)."""
    z = reparameterize(mu, logvar, eps)
    return log_lik(z.flatten(0, 1)) - gaussian_kl(mu, logvar)


def bound(log_lik: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, logvar: torch.Tensor,
          eps: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """``L_K`` for ``K = len(eps)``: :func:`elbo` (analytic KL) for ``K = 1``, else :func:`iw_bound`."""
    if len(eps) == 1:
        return elbo(log_lik, mu, logvar, eps)
    return iw_bound(log_lik, mu, logvar, eps, chunk)


class LatentVariableModel(nn.Module):
    """A VAE: ``encoder(x) -> (mu, logvar)`` and ``log_likelihood(z, x) -> log p(x|z) [N]``, both given by the
    subclass; this class turns them into the bound.

    ``forward(x)`` and ``log_prob(x)`` return ``L_K(x)`` in nats per image, ``K = self.iw_samples`` (an attribute:
    set it to score with another ``K``).

    Draws of ``eps``: in training mode fresh ``N(0, I)`` from the default generator (the run engine seeds it per
    step).  In eval mode one fixed tensor ``(K, *latent shape)`` from a generator seeded with
    :data:`EVAL_NOISE_SEED`, the same for every image of every batch (common random numbers): an image's score
    is a function of the image alone, so it does not depend on the batch it is in or its position there.
    """

    iw_samples: int = 1
    decode_images: int = 1024  # images per decoder pass of the bound: max(1, decode_images // B) samples at a time

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``q(z|x)``, in float32 at least (float64 stays float64)."""
        mu, logvar = self.encoder(x)
        dtype = torch.promote_types(mu.dtype, torch.float32)
        return mu.to(dtype), logvar.to(dtype)

    def log_likelihood(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def draws(self, k: int, mu: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``eps`` ``(k, *mu.shape)``: fresh in training mode (or from ``generator``), fixed per image in eval mode."""
        if self.training or generator is not None:
            if generator is None:
                return torch.randn((k, *mu.shape), device=mu.device, dtype=mu.dtype)
            return torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype).to(mu.device)
        return self.eval_noise(k, mu)

    def eval_noise(self, k: int, mu: torch.Tensor) -> torch.Tensor:
        """The fixed evaluation draws ``(k, *mu.shape)``: one ``(k, *latent shape)`` tensor expanded over the batch;
        made once per (k, latent shape, device, dtype) and kept on the device."""
        key = (k, tuple(mu.shape[1:]), mu.device, mu.dtype)
        cached = getattr(self, "_eval_noise_cache", None)
        if cached is None or cached[0] != key:
            with torch.inference_mode(False):
                g = torch.Generator().manual_seed(EVAL_NOISE_SEED)
                noise = torch.randn((k, 1, *mu.shape[1:]), generator=g, dtype=torch.float64)
                cached = (key, noise.to(mu.device, mu.dtype))
            self._eval_noise_cache = cached
        return cached[1].expand(k, *mu.shape)

    def bound(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``L_K(x)`` ``[B]`` for the posterior ``(mu, logvar)`` and draws ``eps`` ``(K, B, ...)``."""
        with torch.autocast(x.device.type, enabled=False):
            return bound(lambda z: self.log_likelihood(z, x.repeat(len(z) // len(x), *[1] * (x.dim() - 1))),
                         mu, logvar, eps, max(1, self.decode_images // len(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        mu, logvar = self.encode(x)
        return self.bound(x, mu, logvar, self.draws(self.iw_samples, mu))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`~oe_core.errors.OEError` for inputs the model cannot take (subclasses)."""

    def log_prob(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``L_K(x)`` ``[B]`` in nats; ``out`` is ``self(x)`` when the caller has already run the network (through
        a DDP or ``torch.compile`` wrapper): the forward returns the bound itself."""
        return self(x) if out is None else out
