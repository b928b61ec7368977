"""Is the cost linear?  Train-step time against batch size, and scoring time against data-set size.

Each series is fitted with ``t = a + b * n`` by least squares (float64): ``b`` is the marginal cost per image,
``a`` the fixed overhead per call, and ``R^2`` says how well a straight line explains the times.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from density_oe.scorer import score_dataset

from .pixelcnn_cases import fast_model, fast_train_step, uint8_loader
from .timing import alternate, median
from .workload import BenchContext


def linear_fit(n: list[int], seconds: list[float]) -> dict:
    """Least-squares ``seconds = intercept + slope * n``, its ``r2``, and the cost per image at each ``n``."""
    x, y = np.asarray(n, dtype=np.float64), np.asarray(seconds, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / total if total > 0 else 1.0
    return {"n": [int(v) for v in n], "seconds": [float(v) for v in seconds], "slope_s_per_image": float(slope),
            "intercept_s": float(intercept), "r2": r2,
            "per_image_s": [float(t / k) for t, k in zip(y, x)]}


def _series(calls: dict[str, Callable[[], object]], sync: Callable[[], None], budget_s: float,
            max_repeats: int) -> dict[str, float]:
    for fn in calls.values():
        fn()  # warm-up
    times = alternate(calls, sync, max_repeats, budget_s)
    return {k: median(v) for k, v in times.items()}


def batch_linearity(ctx: BenchContext, sync: Callable[[], None], budget_s: float, max_repeats: int) -> dict:
    """Fast train step at the small config for each of ``sizes.linear_batches``."""
    shape = ctx.sizes.small
    calls = {str(b): fast_train_step(ctx, shape, b) for b in ctx.sizes.linear_batches}
    med = _series(calls, sync, budget_s, max_repeats)
    fit = linear_fit(list(ctx.sizes.linear_batches), [med[str(b)] for b in ctx.sizes.linear_batches])
    return {"what": f"train step seconds vs batch size ({shape.label()})", **fit}


def dataset_linearity(ctx: BenchContext, sync: Callable[[], None], budget_s: float, max_repeats: int) -> dict:
    """``density_oe.scorer.score_dataset`` over data sets of ``sizes.linear_images`` images, batch
    ``sizes.linear_score_batch``."""
    shape, bs = ctx.sizes.small, ctx.sizes.linear_score_batch
    model = fast_model(ctx, shape).eval()
    images = ctx.uint8_images(max(ctx.sizes.linear_images), stream=4)

    def scorer(n: int) -> Callable[[], np.ndarray]:
        loader = uint8_loader(images[:n], bs)
        return lambda: score_dataset(model, loader, ctx.device, ctx.amp, ctx.memory_format)

    calls = {str(n): scorer(n) for n in ctx.sizes.linear_images}
    med = _series(calls, sync, budget_s, max_repeats)
    fit = linear_fit(list(ctx.sizes.linear_images), [med[str(n)] for n in ctx.sizes.linear_images])
    return {"what": f"scoring seconds vs data-set size ({shape.label()}, batch {bs})", **fit}
