"""Aggregations of a run's ledger with polars: latency, waits, SLO, utilisation.

The summary reads the ledger lazily and aggregates it with polars' streaming
engine, so its memory does not grow with the number of requests. Percentiles
come from a log-bucket histogram (buckets ``(1 + 1e-4)`` apart), clamped to the
exact minimum and maximum: every reported percentile is within 0.01 % of the
exact order statistic, and exact when all values are equal.

Requests that arrive during the warm-up are left out of every figure except
utilisation, which counts the busy time of all requests that overlaps the
measurement window ``[warmup_s, horizon_s]``.

Token-level figures (scenarios with serving pools, :mod:`sim.serving`):
``ttft_p*_ms`` are percentiles of the time to first token of served requests
as the client sees it (``ttft_s``: network both ways included), ``tpot_p*_ms``
of the mean time per output token after the first, per request. Both are null
when no pool serves tokens. ``cache_hit_share`` is the share of requests (of
visits, per pool) answered by a response cache; hits count as served. The
utilisation of a continuous-batching pool is its batch occupancy: request-
seconds in batches over ``servers * max_batch`` slot-seconds. Cache hits
never occupy a pool.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from sim.cost import CostReport, cost_report
from sim.ledger import Window
from sim.schema import LoadedScenario
from sim.serving import batch_slots

__all__ = ["PERCENTILES", "SUMMARY_COLUMNS", "Window", "summarize"]

PERCENTILES = (0.5, 0.95, 0.99)
BUCKET_GROWTH = 1e-4
"""Relative width of a histogram bucket; percentiles are within half of it."""
_SMALLEST_S = 1e-9

SUMMARY_COLUMNS = {
    "scope": pl.String,
    "name": pl.String,
    "requests": pl.Int64,
    "served": pl.Int64,
    "dropped": pl.Int64,
    "dropped_share": pl.Float64,
    "throughput_per_s": pl.Float64,
    "latency_mean_ms": pl.Float64,
    "latency_p50_ms": pl.Float64,
    "latency_p95_ms": pl.Float64,
    "latency_p99_ms": pl.Float64,
    "queue_wait_mean_ms": pl.Float64,
    "queue_wait_p50_ms": pl.Float64,
    "queue_wait_p95_ms": pl.Float64,
    "queue_wait_p99_ms": pl.Float64,
    "ttft_p50_ms": pl.Float64,
    "ttft_p95_ms": pl.Float64,
    "ttft_p99_ms": pl.Float64,
    "tpot_p50_ms": pl.Float64,
    "tpot_p95_ms": pl.Float64,
    "tpot_p99_ms": pl.Float64,
    "cache_hit_share": pl.Float64,
    "slo_attainment": pl.Float64,
    "utilisation": pl.Float64,
    "cost_usd": pl.Float64,
    "cost_per_request_usd": pl.Float64,
    "cost_per_served_usd": pl.Float64,
    "cost_per_1k_tokens_usd": pl.Float64,
}
"""Columns of the summary frame, in order, with their types."""


def summarize(
    ledger: Path,
    loaded: LoadedScenario,
    window: Window,
    costs: CostReport | None = None,
) -> pl.DataFrame:
    """Summarise a ledger per pool, per class and overall.

    Parameters
    ----------
    ledger
        The run's ``requests.parquet``.
    loaded
        The scenario that produced it (SLO targets, pool sizes).
    window
        The measurement window.
    costs
        The run's cost report; computed from the ledger when not given. The
        overall row carries the total, each class its allocated share, each pool
        its own compute, hardware and energy lines.

    Returns
    -------
    polars.DataFrame
        One row per scope (``overall``, then each ``class``, then each
        ``pool``), with the columns of :data:`SUMMARY_COLUMNS`.

    Examples
    --------
    >>> summarize(Path("out/requests.parquet"), loaded, window)  # doctest: +SKIP
    """
    groups = _group_totals(ledger, loaded, window)
    tokens = any(p.serving is not None for n in loaded.topology.nodes for p in n.pools)
    histograms = {
        "latency": _histogram(ledger, "latency_s", final_only=True),
        "queue_wait": _histogram(ledger, "queue_wait_s", final_only=False),
    }
    if tokens:
        histograms["ttft"] = _histogram(ledger, "ttft_s", final_only=True)
        histograms["tpot"] = _histogram(ledger, "tpot_s", final_only=False)

    frames = [
        _scope(groups, histograms, "overall", window),
        _scope(groups, histograms, "class", window),
        _scope(groups, histograms, "pool", window),
    ]
    summary = pl.concat(frames, how="diagonal_relaxed")
    summary = summary.join(
        _utilisation(groups, loaded, window), on=["scope", "name"], how="left"
    )
    report = costs if costs is not None else cost_report(ledger, loaded, window)
    summary = _with_costs(summary, report)
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    summary = summary.with_columns(pl.lit(None, pl.Float64).alias(c) for c in missing)
    return summary.select([pl.col(c).cast(t) for c, t in SUMMARY_COLUMNS.items()]).sort(
        pl.col("scope").replace_strict({"overall": 0, "class": 1, "pool": 2}),
        "name",
        maintain_order=True,
    )


def _group_totals(ledger: Path, loaded: LoadedScenario, window: Window) -> pl.DataFrame:
    """One streaming pass: sums per class, pool and final flag.

    Counts, means and SLO cover requests that arrived in the window; busy time
    is every served visit's overlap with the window (warm-up arrivals too).
    Plain columns multiplied by 0/1 flags, grouped on the ledger's categorical
    columns, keep polars' streaming engine chunk by chunk.
    """
    measured = pl.col("m")
    served = pl.col("s")
    start = pl.col("pool_arrival_s") + pl.col("queue_wait_s")
    # clip() rather than min/max_horizontal: the latter defeat streaming.
    end = start + pl.col("service_s")
    overlap = end.clip(upper_bound=window.horizon_s) - start.clip(
        lower_bound=window.warmup_s
    )
    rows = _with_slo(pl.scan_parquet(ledger), loaded).with_columns(
        m=(~pl.col("warmup")).cast(pl.Int64),
        s=(pl.col("outcome") == "served").cast(pl.Int64),
        latency=pl.col("latency_s").fill_null(0.0),
        wait=pl.col("queue_wait_s").fill_null(0.0),
        met=(pl.col("latency_s") <= pl.col("slo_s")).fill_null(False).cast(pl.Int64),
        has_slo=pl.col("slo_s").is_not_null().cast(pl.Int64),
        hit=pl.col("cache_hit").cast(pl.Int64),
        tokens=pl.col("input_tokens").fill_null(0)
        + pl.col("output_tokens").fill_null(0),
        busy=overlap.clip(lower_bound=0.0).fill_null(0.0)
        * (~pl.col("cache_hit")).cast(pl.Float64),
    )
    return (
        rows.group_by("class", "pool", "final")
        .agg(
            requests=measured.sum(),
            served=(measured * served).sum(),
            latency_sum=(measured * served * pl.col("latency")).sum(),
            wait_sum=(measured * served * pl.col("wait")).sum(),
            slo_met=(measured * pl.col("met")).sum(),
            has_slo=pl.col("has_slo").max(),
            hits=(measured * pl.col("hit")).sum(),
            tokens=(measured * pl.col("tokens")).sum(),
            busy_s=(served * pl.col("busy")).sum(),
        )
        .collect(engine="streaming")
        .with_columns(pl.col("class", "pool").cast(pl.String))
    )


def _histogram(ledger: Path, column: str, *, final_only: bool) -> pl.DataFrame:
    """One streaming pass: a log-bucket histogram of `column` per class and pool."""
    value = pl.col(column)
    bucket = (
        pl.when(value <= _SMALLEST_S)
        .then(pl.lit(-1, pl.Int64))
        .otherwise(((value / _SMALLEST_S).log() / math.log1p(BUCKET_GROWTH)).floor())
        .cast(pl.Int64)
        .alias("bucket")
    )
    keep = ~pl.col("warmup") & (pl.col("outcome") == "served") & value.is_not_null()
    if final_only:
        keep = keep & pl.col("final")
    return (
        pl.scan_parquet(ledger)
        .filter(keep)
        .group_by("class", "pool", "final", bucket)
        .agg(count=pl.len(), low=value.min(), high=value.max())
        .collect(engine="streaming")
        .with_columns(pl.col("class", "pool").cast(pl.String))
    )


_SCOPE_KEY = {
    "overall": pl.lit("all"),
    "class": pl.col("class"),
    "pool": pl.col("pool"),
}


def _scope(
    groups: pl.DataFrame,
    histograms: dict[str, pl.DataFrame],
    scope: str,
    window: Window,
) -> pl.DataFrame:
    """Counts, means, SLO and percentiles of one scope from the pass results.

    Overall and class figures are per request, from each request's final row
    (for a chain, its waits are those at its last pool); a pool's are per
    visit, except its latency, which is that of the requests it finished.
    """
    name = _SCOPE_KEY[scope].alias("name")
    rows = groups if scope == "pool" else groups.filter(pl.col("final"))
    counts = rows.group_by(name).agg(
        pl.col("requests", "served", "wait_sum", "slo_met", "hits", "tokens").sum(),
        has_slo=pl.col("has_slo").max(),
    )
    finals = (
        groups.filter(pl.col("final"))
        .group_by(name)
        .agg(pl.col("latency_sum").sum(), finished=pl.col("served").sum())
    )
    counts = counts.join(finals, on="name", how="left").with_columns(
        scope=pl.lit(scope),
        dropped=pl.col("requests") - pl.col("served"),
        dropped_share=(pl.col("requests") - pl.col("served")) / pl.col("requests"),
        throughput_per_s=pl.col("served") / window.length_s,
        latency_mean_ms=pl.col("latency_sum") / pl.col("finished") * 1000.0,
        queue_wait_mean_ms=pl.col("wait_sum") / pl.col("served") * 1000.0,
        slo_attainment=pl.when(pl.col("has_slo") > 0).then(
            pl.col("slo_met") / pl.col("requests")
        ),
        cache_hit_share=pl.col("hits") / pl.col("requests"),
    )
    if scope != "overall":
        # Classes and pools with no measured request have no row; overall always.
        counts = counts.filter(pl.col("requests") > 0)
    for prefix, histogram in histograms.items():
        visits = histogram if scope == "pool" else histogram.filter(pl.col("final"))
        counts = counts.join(_percentiles(visits, name, prefix), on="name", how="left")
    return counts


def _percentiles(histogram: pl.DataFrame, name: pl.Expr, prefix: str) -> pl.DataFrame:
    """p50/p95/p99 in ms per scope name from merged histogram buckets."""
    names = [f"{prefix}_p{round(q * 100)}_ms" for q in PERCENTILES]
    if histogram.is_empty():
        return pl.DataFrame(
            schema={"name": pl.String, **dict.fromkeys(names, pl.Float64)}
        )

    merged = histogram.group_by(name, "bucket").agg(
        pl.col("count").sum(), pl.col("low").min(), pl.col("high").max()
    )
    ranked = merged.sort("name", "bucket").with_columns(
        cumulative=pl.col("count").cum_sum().over("name"),
        total=pl.col("count").sum().over("name"),
        value=_bucket_value(),
    )
    picks = [
        ranked.filter(pl.col("cumulative") >= q * pl.col("total"))
        .group_by("name")
        .agg((pl.col("value").first() * 1000.0).alias(column))
        for q, column in zip(PERCENTILES, names, strict=True)
    ]
    result = picks[0]
    for pick in picks[1:]:
        result = result.join(pick, on="name", how="left")
    return result


def _with_costs(summary: pl.DataFrame, report: CostReport) -> pl.DataFrame:
    """Add each scope's cost and its unit costs (per request, served, 1k tokens)."""
    pool_lines = report.lines.filter(
        pl.col("category").is_in(["compute", "edge_hardware", "energy"])
    )
    costs = pl.concat(
        [
            pl.DataFrame(
                {"scope": ["overall"], "name": ["all"], "cost_usd": [report.total_usd]}
            ),
            report.by_class.select(
                scope=pl.lit("class"), name="class", cost_usd="cost_usd"
            ),
            pool_lines.group_by(scope=pl.lit("pool"), name="resource").agg(
                pl.col("cost_usd").sum()
            ),
        ],
        how="vertical_relaxed",
    )
    cost = pl.col("cost_usd")
    return summary.join(costs, on=["scope", "name"], how="left").with_columns(
        cost_per_request_usd=cost / pl.col("requests"),
        cost_per_served_usd=pl.when(pl.col("served") > 0).then(cost / pl.col("served")),
        cost_per_1k_tokens_usd=pl.when(pl.col("tokens") > 0).then(
            cost * 1000.0 / pl.col("tokens")
        ),
    )


def _with_slo(rows: pl.LazyFrame, loaded: LoadedScenario) -> pl.LazyFrame:
    default_ms = loaded.scenario.slo_ms
    slo_s = {
        c.name: (c.slo_ms or default_ms) / 1000.0
        for c in loaded.scenario.classes
        if (c.slo_ms or default_ms) is not None
    }
    # A when/then chain rather than a mapping lookup: polars' streaming engine
    # runs it chunk by chunk, so the summary's memory stays flat.
    target = pl.lit(None, pl.Float64)
    for name, seconds in slo_s.items():
        target = (
            pl.when(pl.col("class") == name).then(pl.lit(seconds)).otherwise(target)
        )
    return rows.with_columns(slo_s=target)


def _bucket_value() -> pl.Expr:
    """A bucket's representative value: its centre, clamped to what it holds."""
    growth = 1.0 + BUCKET_GROWTH
    centre = (
        _SMALLEST_S
        * growth ** pl.col("bucket").cast(pl.Float64)
        * (1.0 + BUCKET_GROWTH / 2)
    )
    return (
        pl.when(pl.col("bucket") < 0)
        .then(pl.col("low"))
        .otherwise(
            pl.max_horizontal(pl.col("low"), pl.min_horizontal(centre, pl.col("high")))
        )
    )


def _utilisation(
    groups: pl.DataFrame, loaded: LoadedScenario, window: Window
) -> pl.DataFrame:
    """Busy server-seconds inside the window over the servers' capacity.

    A continuous-batching pool has ``servers * max_batch`` batch slots.
    """
    slots = {
        p.name: p.servers * batch_slots(p)
        for n in loaded.topology.nodes
        for p in n.pools
    }
    capacity = pl.DataFrame(
        {"name": list(slots), "slots": list(slots.values())},
        schema={"name": pl.String, "slots": pl.Int64},
    )
    busy = groups.group_by(name="pool").agg(pl.col("busy_s").sum())
    return capacity.join(busy, on="name", how="inner").select(
        "name",
        scope=pl.lit("pool"),
        utilisation=pl.col("busy_s") / (pl.col("slots") * window.length_s),
    )
