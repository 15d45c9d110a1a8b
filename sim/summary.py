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
from sim.profiles import load_profiles
from sim.schema import LoadedScenario, Pool

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
    rows = _with_slo(pl.scan_parquet(ledger), loaded).filter(~pl.col("warmup"))
    final = rows.filter(pl.col("final"))
    tokens = any(p.serving is not None for n in loaded.topology.nodes for p in n.pools)
    by_request = [
        _scope(final, "overall", None, window, tokens=tokens),
        _scope(final, "class", "class", window, tokens=tokens),
    ]
    pools = _scope(rows, "pool", "pool", window, per_visit=True, tokens=tokens)
    pools = pools.join(_utilisation(ledger, loaded, window), on="name", how="left")
    frames = [f.with_columns(utilisation=pl.lit(None, pl.Float64)) for f in by_request]
    summary = pl.concat([*frames, pools], how="diagonal_relaxed")
    report = costs if costs is not None else cost_report(ledger, loaded, window)
    summary = _with_costs(summary, report)
    return summary.select([pl.col(c).cast(t) for c, t in SUMMARY_COLUMNS.items()]).sort(
        pl.col("scope").replace_strict({"overall": 0, "class": 1, "pool": 2}),
        "name",
        maintain_order=True,
    )


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


def _scope(
    rows: pl.LazyFrame,
    scope: str,
    key: str | None,
    window: Window,
    *,
    per_visit: bool = False,
    tokens: bool = False,
) -> pl.DataFrame:
    """Counts, means, SLO and percentiles of one scope (grouped by `key`).

    TTFT and TPOT percentiles are computed only when `tokens` is true (the
    scenario has serving pools); otherwise they are null.
    """
    keys = (
        [pl.col(key).cast(pl.String).alias("name")]
        if key
        else [pl.lit("all").alias("name")]
    )
    served = pl.col("outcome") == "served"
    latency_col = pl.when(served & pl.col("final")).then(pl.col("latency_s"))
    counts = (
        rows.group_by(keys)
        .agg(
            requests=pl.len(),
            served=served.sum(),
            dropped=(~served).sum(),
            latency_mean_ms=latency_col.mean() * 1000.0,
            queue_wait_mean_ms=pl.col("queue_wait_s").mean() * 1000.0,
            slo_met=(pl.col("latency_s") <= pl.col("slo_s")).sum(),
            has_slo=pl.col("slo_s").is_not_null().any(),
            cache_hit_share=pl.col("cache_hit").mean(),
            tokens=(
                pl.col("input_tokens").fill_null(0)
                + pl.col("output_tokens").fill_null(0)
            ).sum(),
        )
        .with_columns(
            scope=pl.lit(scope),
            dropped_share=pl.col("dropped") / pl.col("requests"),
            throughput_per_s=pl.col("served") / window.length_s,
            slo_attainment=pl.when(pl.col("has_slo")).then(
                pl.col("slo_met") / pl.col("requests")
            ),
        )
        .collect(engine="streaming")
    )
    if per_visit:
        # A pool's latency is that of the requests it finished; waits are per visit.
        finished = rows.filter(pl.col("final"))
        counts = counts.drop("latency_mean_ms").join(
            finished.group_by(keys)
            .agg(latency_mean_ms=latency_col.mean() * 1000.0)
            .collect(engine="streaming"),
            on="name",
            how="left",
        )
        latency_rows = finished
    else:
        latency_rows = rows

    latency = _percentiles(latency_rows.filter(served), keys, "latency_s", "latency")
    waits = _percentiles(rows.filter(served), keys, "queue_wait_s", "queue_wait")
    result = counts.join(latency, on="name", how="left").join(
        waits, on="name", how="left"
    )
    if not tokens:
        nulls = [
            f"{p}_p{round(q * 100)}_ms" for p in ("ttft", "tpot") for q in PERCENTILES
        ]
        return result.with_columns(pl.lit(None, pl.Float64).alias(c) for c in nulls)
    # TTFT is set on final rows only; TPOT on every visit to a serving pool.
    ttft = _percentiles(latency_rows.filter(served), keys, "ttft_s", "ttft")
    tpot = _percentiles(rows.filter(served), keys, "tpot_s", "tpot")
    return result.join(ttft, on="name", how="left").join(tpot, on="name", how="left")


def _percentiles(
    rows: pl.LazyFrame, keys: list[pl.Expr], column: str, prefix: str
) -> pl.DataFrame:
    """p50/p95/p99 in ms per group from a streaming log-bucket histogram."""
    value = pl.col(column)
    bucket = (
        pl.when(value <= _SMALLEST_S)
        .then(pl.lit(-1, pl.Int64))
        .otherwise(((value / _SMALLEST_S).log() / math.log1p(BUCKET_GROWTH)).floor())
        .cast(pl.Int64)
        .alias("bucket")
    )
    histogram = (
        rows.filter(value.is_not_null())
        .group_by([*keys, bucket])
        .agg(count=pl.len(), low=value.min(), high=value.max())
        .collect(engine="streaming")
    )
    names = [f"{prefix}_p{round(q * 100)}_ms" for q in PERCENTILES]
    if histogram.is_empty():
        return pl.DataFrame(
            schema={"name": pl.String, **dict.fromkeys(names, pl.Float64)}
        )

    ranked = histogram.sort("name", "bucket").with_columns(
        cumulative=pl.col("count").cum_sum().over("name"),
        total=pl.col("count").sum().over("name"),
        value=_bucket_value(),
    )
    picks = [
        ranked.filter(pl.col("cumulative") >= q * pl.col("total"))
        .group_by("name")
        .agg((pl.col("value").first() * 1000.0).alias(name))
        for q, name in zip(PERCENTILES, names, strict=True)
    ]
    result = picks[0]
    for pick in picks[1:]:
        result = result.join(pick, on="name", how="left")
    return result


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


def _utilisation(ledger: Path, loaded: LoadedScenario, window: Window) -> pl.DataFrame:
    """Busy server-seconds inside the window over the servers' capacity.

    A continuous-batching pool has ``servers * max_batch`` batch slots.
    """
    servers = {
        p.name: p.servers * _batch_slots(p)
        for n in loaded.topology.nodes
        for p in n.pools
    }
    start = pl.col("pool_arrival_s") + pl.col("queue_wait_s")
    end = start + pl.col("service_s")
    overlap = pl.min_horizontal(end, pl.lit(window.horizon_s)) - pl.max_horizontal(
        start, pl.lit(window.warmup_s)
    )
    busy = (
        pl.scan_parquet(ledger)
        .filter((pl.col("outcome") == "served") & ~pl.col("cache_hit"))
        .group_by(name=pl.col("pool").cast(pl.String))
        .agg(busy_s=overlap.clip(lower_bound=0.0).sum())
        .collect(engine="streaming")
    )
    capacity = pl.DataFrame(
        {"name": list(servers), "servers": list(servers.values())},
        schema={"name": pl.String, "servers": pl.Int64},
    )
    return capacity.join(busy, on="name", how="left").select(
        "name",
        utilisation=pl.col("busy_s").fill_null(0.0)
        / (pl.col("servers") * window.length_s),
    )


def _batch_slots(pool: Pool) -> int:
    """Requests one server of `pool` serves at once: its maximum batch, or 1."""
    if pool.serving is None or pool.serving.batching != "continuous":
        return 1
    return load_profiles().get(pool.serving.model, pool.serving.hardware).max_batch
