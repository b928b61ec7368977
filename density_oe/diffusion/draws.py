"""The random draws of the bound's estimator: fresh in training, a fixed function of the image at evaluation.

Each image needs ``K`` times ``t`` (stratified: ``t_k = (u + k) / K`` for one ``u ~ U(0, 1)``, so the ``K``
draws cover [0, 1] evenly and each is still uniform), ``K`` noise images ``eps`` for the diffusion loss and one
``eps_0`` for the reconstruction term.

In training they come from the default generator (the run engine seeds it per step).  At evaluation they come from
a counter-based hash of the image's own 8-bit values (:func:`image_keys`), so

* an image gets the same score in any batch, at any batch size, in any order, in any dataset and on any device
  (up to float rounding): the draw depends on nothing but the image;
* the draws are pure tensor arithmetic on the images' device: no host generator, no host-to-device copy, so a
  scoring batch can be captured as a CUDA graph and traced by ``torch.compile``.

The alternative, a generator seeded by the image's index in its dataset, would need the index inside
``log_prob(x)`` (which sees the images only) and would give the same image different scores at different
positions.  The price of a content key: two images that differ in one pixel get unrelated draws, so their scores
differ by the estimator's noise, as any two images' do.

The hash is the integer finaliser ``h ^= h >> 16; h *= 0x45d9f3b`` (twice, then ``h ^= h >> 16``) on 32-bit
values held in int64, so every product stays below 2^63 and the arithmetic is exact on every device.  Uniforms
take its top 24 bits, normals come from the Box-Muller transform.
"""
from __future__ import annotations

import math

import torch

MASK = 0xFFFFFFFF
MULT = 0x45D9F3B
SALT_T, SALT_EPS, SALT_EPS0_A, SALT_EPS_B, SALT_EPS0_B = 0x1B873593, 0x68E31DA4, 0x2545F491, 0x5BD1E995, 0x3C6EF372


def mix32(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash of int64 tensors holding values in [0, 2^32)."""
    h = ((h ^ (h >> 16)) * MULT) & MASK
    h = ((h ^ (h >> 16)) * MULT) & MASK
    return h ^ (h >> 16)


def image_keys(x: torch.Tensor) -> torch.Tensor:
    """One 32-bit key [B] per image of ``x`` ([-1, 1] grid): a hash of every 8-bit value and its position."""
    k = torch.round((x.detach().float().flatten(1) + 1.0) * 127.5).to(torch.int64)
    pos = torch.arange(k.shape[1], device=x.device, dtype=torch.int64)
    return mix32(mix32(k + 256 * pos).sum(1) & MASK)


def _uniform(keys: torch.Tensor, n: int, salt: int) -> torch.Tensor:
    """``[B, n]`` values in (0, 1), float32: stream ``salt`` of each key."""
    idx = mix32(torch.arange(n, device=keys.device, dtype=torch.int64) ^ salt)
    h = mix32((keys[:, None] + idx[None, :]) & MASK)
    return ((h >> 8).to(torch.float32) + 0.5) * (1.0 / 2 ** 24)


def _normal(keys: torch.Tensor, n: int, salt_a: int, salt_b: int) -> torch.Tensor:
    """``[B, n]`` standard normals (Box-Muller)."""
    u1, u2 = _uniform(keys, n, salt_a), _uniform(keys, n, salt_b)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)


def stratified_t(u: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, k]`` times ``(u + j) / k`` for ``j = 0..k-1`` from ``u`` [B] in [0, 1)."""
    return (u[:, None] + torch.arange(k, device=u.device, dtype=u.dtype)) / k


def draws(x: torch.Tensor, k: int, fixed: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(t [B, k], eps [B, k, *x.shape[1:]], eps_0 like x)``, float32: fresh from the default generator, or
    ``fixed`` by each image's content (module docstring)."""
    b, shape = x.shape[0], x.shape[1:]
    dims = x[0].numel()
    if not fixed:
        u = torch.rand(b, device=x.device)
        return (stratified_t(u, k), torch.randn(b, k, *shape, device=x.device),
                torch.randn(b, *shape, device=x.device))
    keys = image_keys(x)
    u = _uniform(keys, 1, SALT_T)[:, 0]
    eps = _normal(keys, k * dims, SALT_EPS, SALT_EPS_B).view(b, k, *shape)
    eps0 = _normal(keys, dims, SALT_EPS0_A, SALT_EPS0_B).view(b, *shape)
    return stratified_t(u, k), eps, eps0
