"""Statistics over a data set of rewards: the clipped mean HealthBench reports and its spread.

Failed samples (``None``) are left out of every statistic, never counted as zero.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence


def dataset_mean(rewards: Sequence[float | None], *, clip: bool = True) -> float | None:
    """Mean over scored samples, clipped to [0, 1] as HealthBench does; None if nothing scored."""
    scored = [r for r in rewards if r is not None]
    if not scored:
        return None
    mean = sum(scored) / len(scored)
    return min(1.0, max(0.0, mean)) if clip else mean


def bootstrap_std(rewards: Sequence[float | None], *, n: int = 1000, seed: int = 0,
                  clip: bool = True) -> float | None:
    """Standard deviation of the (clipped) mean over bootstrap resamples of the scored samples."""
    scored = [r for r in rewards if r is not None]
    if len(scored) < 2 or n < 2:
        return None
    rng = random.Random(seed)
    means = []
    for _ in range(n):
        sample = [scored[rng.randrange(len(scored))] for _ in scored]
        means.append(dataset_mean(sample, clip=clip))
    mu = sum(means) / n
    return math.sqrt(sum((m - mu) ** 2 for m in means) / (n - 1))


def dataset_tag_scores(per_sample: Iterable[Mapping[str, float | None]], *, n_bootstrap: int = 1000,
                       seed: int = 0) -> dict[str, dict[str, float | int | None]]:
    """Aggregate per-sample tag scores over a data set: for each tag the clipped mean over the samples
    that have the tag (``clip(mean, 0, 1)``), the bootstrap std of that mean, and ``n``.

    Samples whose tag score is ``None`` (a failed judgment) are left out of that tag, as they are
    left out of :func:`dataset_mean`.
    """
    columns: dict[str, list[float | None]] = {}
    for scores in per_sample:
        for tag, value in scores.items():
            columns.setdefault(tag, []).append(value)
    out: dict[str, dict[str, float | int | None]] = {}
    for tag in sorted(columns):
        values = columns[tag]
        out[tag] = {"mean": dataset_mean(values),
                    "bootstrap_std": bootstrap_std(values, n=n_bootstrap, seed=seed),
                    "n": sum(v is not None for v in values)}
    return out


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (``None`` when empty)."""
    n = len(values)
    if n == 0:
        return None
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    alpha = (1 - level) / 2
    return _percentile(means, alpha), _percentile(means, 1 - alpha)
