"""Per-point figures of a sweep: means, confidence intervals and the Pareto set.

For every point, each numeric column of the ``overall`` summary row is
averaged over the point's replications, with a two-sided confidence interval
from Student's t distribution: ``mean +- t(0.975, n - 1) * s / sqrt(n)``, where
``s`` is the sample standard deviation of the ``n`` replications that have a
value. With one replication the interval is unknown (null).

When the results have a cost column (``cost_usd``, or else the first numeric
column ending in ``_usd`` with a value), the points that no other point beats
on both mean cost and mean p95 latency are marked as the Pareto set.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sim.api import write_parquet_atomic
from sim.sweep.dataset import (
    PARAMETER_PREFIX,
    POINTS_FILE,
    parameter_frame,
    read_failures,
    read_manifest,
    read_results,
)

__all__ = [
    "CONFIDENCE",
    "KEY_METRICS",
    "PointsSummary",
    "pareto_front",
    "summarize_sweep",
    "t_critical",
]

CONFIDENCE = 0.95
KEY_METRICS = (
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "slo_attainment",
    "dropped_share",
    "throughput_per_s",
)
"""Shown first, in this order; every other numeric column follows."""
PARETO_LATENCY = "latency_p95_ms"
_BOOKKEEPING = ("point", "replication", "seed")


@dataclass(frozen=True)
class PointsSummary:
    """One row per point of a sweep, as written to ``points.parquet``.

    Attributes
    ----------
    name
        The sweep's name.
    points
        ``point``, the ``param:`` columns, ``runs`` and ``failed`` (counts),
        then ``<metric>_mean``, ``<metric>_ci_low`` and ``<metric>_ci_high``
        for each metric, and ``pareto`` when there is a cost column.
    metrics
        The summary columns averaged, key metrics first.
    cost_column
        The cost metric the Pareto set uses; None when there is none.
    replications
        Runs per point the sweep asks for.
    path
        Where the frame was written.
    """

    name: str
    points: pl.DataFrame
    metrics: tuple[str, ...]
    cost_column: str | None
    replications: int
    path: Path


def summarize_sweep(out_dir: str | os.PathLike[str]) -> PointsSummary:
    """Average each point's replications and write ``points.parquet``.

    Parameters
    ----------
    out_dir
        A sweep's output folder.

    Returns
    -------
    PointsSummary
        The per-point frame, sorted by mean cost then mean p95 latency (by mean
        p95 latency alone when there is no cost column).

    Raises
    ------
    sim.errors.PlacesimError
        When the folder holds no sweep.

    Examples
    --------
    >>> summary = summarize_sweep("out/three_tier_sweep")  # doctest: +SKIP
    >>> summary.points.filter("pareto")  # doctest: +SKIP
    """
    manifest = read_manifest(out_dir)
    parameters = parameter_frame(manifest["parameters"], manifest["points"])
    overall = _overall(read_results(out_dir))
    metrics = _metrics(overall)

    frame = parameters.join(_per_point(overall, metrics), on="point", how="left")
    frame = frame.join(_failed(out_dir), on="point", how="left").with_columns(
        pl.col("runs", "failed").fill_null(0).cast(pl.Int64)
    )
    first = [*parameters.columns, "runs", "failed"]
    frame = frame.select(*first, pl.exclude(first))
    cost = _cost_column(frame, metrics)
    if cost is not None:
        frame = frame.with_columns(pareto=pareto_front(frame, cost))
    frame = _sorted(frame, cost)

    path = Path(out_dir) / POINTS_FILE
    write_parquet_atomic(frame, path)
    return PointsSummary(
        manifest["name"], frame, metrics, cost, manifest["replications"], path
    )


def _overall(results: pl.DataFrame) -> pl.DataFrame:
    if "scope" not in results.columns:
        return results
    return results.filter(pl.col("scope") == "overall")


def _metrics(overall: pl.DataFrame) -> tuple[str, ...]:
    numeric = [
        name
        for name, dtype in overall.schema.items()
        if dtype.is_numeric()
        and name not in _BOOKKEEPING
        and not name.startswith(PARAMETER_PREFIX)
    ]
    first = [m for m in KEY_METRICS if m in numeric]
    return (*first, *(m for m in numeric if m not in first))


def _per_point(overall: pl.DataFrame, metrics: tuple[str, ...]) -> pl.DataFrame:
    aggregations = [pl.len().alias("runs")]
    for m in metrics:
        aggregations += [
            pl.col(m).mean().alias(f"{m}_mean"),
            pl.col(m).std().alias(f"_{m}_std"),
            pl.col(m).count().alias(f"_{m}_n"),
        ]
    stats = overall.group_by("point").agg(aggregations)
    for m in metrics:
        half = _half_width(stats, m)
        stats = stats.with_columns(
            (pl.col(f"{m}_mean") - half).alias(f"{m}_ci_low"),
            (pl.col(f"{m}_mean") + half).alias(f"{m}_ci_high"),
        )
    return stats.select(pl.exclude("^_.*$"))


def _half_width(stats: pl.DataFrame, metric: str) -> pl.Expr:
    counts = stats[f"_{metric}_n"].unique().to_list()
    factors = {n: t_critical(n - 1) / math.sqrt(n) for n in counts if n >= 2}
    factor = pl.col(f"_{metric}_n").replace_strict(
        factors, default=None, return_dtype=pl.Float64
    )
    return factor * pl.col(f"_{metric}_std")


def _failed(out_dir: str | os.PathLike[str]) -> pl.DataFrame:
    failures = read_failures(out_dir)
    return failures.group_by("point").agg(pl.len().cast(pl.Int64).alias("failed"))


def _cost_column(frame: pl.DataFrame, metrics: tuple[str, ...]) -> str | None:
    costs = [m for m in metrics if m.endswith("_usd")]
    costs.sort(key=lambda m: m != "cost_usd")
    for metric in costs:
        if frame[f"{metric}_mean"].is_not_null().any():
            return metric
    return None


def _sorted(frame: pl.DataFrame, cost: str | None) -> pl.DataFrame:
    keys = [f"{PARETO_LATENCY}_mean", "point"]
    if cost is not None:
        keys.insert(0, f"{cost}_mean")
    present = [k for k in keys if k in frame.columns]
    return frame.sort(present, nulls_last=True)


def pareto_front(frame: pl.DataFrame, cost: str) -> pl.Series:
    """Mark the points no other point beats on both mean cost and mean p95.

    A point is beaten when another costs no more and is no slower, and is
    better on at least one of the two. Points without both figures are not
    marked.

    Parameters
    ----------
    frame
        Per-point rows with ``<cost>_mean`` and ``latency_p95_ms_mean``.
    cost
        The cost metric.

    Returns
    -------
    polars.Series
        ``pareto``: True for the points of the Pareto set.

    Examples
    --------
    >>> frame = pl.DataFrame(
    ...     {"cost_usd_mean": [1.0, 2.0, 3.0], "latency_p95_ms_mean": [9.0, 5.0, 6.0]}
    ... )
    >>> pareto_front(frame, "cost_usd").to_list()
    [True, True, False]
    """
    costs = frame[f"{cost}_mean"].to_numpy().astype(float)
    latencies = frame[f"{PARETO_LATENCY}_mean"].to_numpy().astype(float)
    known = ~(np.isnan(costs) | np.isnan(latencies))
    marked = []
    for i in range(len(costs)):
        if not known[i]:
            marked.append(False)
            continue
        no_worse = known & (costs <= costs[i]) & (latencies <= latencies[i])
        better = (costs < costs[i]) | (latencies < latencies[i])
        marked.append(not bool((no_worse & better).any()))
    return pl.Series("pareto", marked, dtype=pl.Boolean)


@functools.lru_cache(maxsize=256)
def t_critical(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value of Student's t with `df` degrees of freedom.

    It solves ``P(|T| <= t) = confidence`` by bisection on the exact
    distribution function for an integer number of degrees of freedom
    (Abramowitz and Stegun 26.7.3 and 26.7.4).

    Parameters
    ----------
    df
        Degrees of freedom, at least 1.
    confidence
        The two-sided coverage, between 0 and 1.

    Returns
    -------
    float

    Examples
    --------
    >>> round(t_critical(1), 3), round(t_critical(4), 3), round(t_critical(30), 3)
    (12.706, 2.776, 2.042)
    """
    low, high = 0.0, 1.0
    while _central_probability(high, df) < confidence:
        high *= 2.0
    for _ in range(80):
        middle = (low + high) / 2.0
        if _central_probability(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def _central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer number of degrees of freedom."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(2, df, 2):
            term *= (k - 1) / k * cos2
            total += term
        return math.sin(theta) * total
    term = total = math.cos(theta)
    for k in range(3, df, 2):
        term *= (k - 1) / k * cos2
        total += term
    series = math.sin(theta) * total if df > 1 else 0.0
    return 2.0 / math.pi * (theta + series)
