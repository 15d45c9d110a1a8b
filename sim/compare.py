"""Compare placements of one scenario side by side, on common random numbers.

Each placement is run on the same scenario and seeds: every class's arrivals,
origins and sizes come from streams that do not depend on the placement, so
the placements see exactly the same requests and their differences are not
noise. With several replications (seeds ``seed, seed + 1, ...``) each figure
is a mean with a 95 % confidence interval (Student t).

A placement is named in the scenario's ``placements`` mapping, which gives the
placement every class uses under that name, or is a policy name used as is::

    placements:
      edge: {policy: edge}
      hybrid: {policy: hybrid, spill_queue: 2}
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sim.api import RunResult, run, write_parquet_atomic
from sim.cost import CATEGORIES, MONTH_S
from sim.errors import InputError, PlacesimError
from sim.policies import POLICIES
from sim.schema import LoadedScenario, Placement, load_scenario, with_overrides

__all__ = ["COMPARISON_FILE", "Comparison", "compare", "pareto_front"]

COMPARISON_FILE = "comparison.parquet"

# Figures compared, and whether lower is better.
METRICS = {
    "latency_p50_ms": True,
    "latency_p95_ms": True,
    "latency_p99_ms": True,
    "ttft_p95_ms": True,
    "slo_attainment": False,
    "dropped_share": True,
    "usd_per_1k_requests": True,
    "monthly_usd": True,
}


@dataclass(frozen=True)
class Comparison:
    """The comparison table and the runs behind it.

    Attributes
    ----------
    table
        One row per placement: each metric's mean (and ``<metric>_ci95``
        half-width with replications), monthly cost by category, ``best_in``
        (the metrics where it is best) and ``pareto`` (on the front of
        monthly cost against p95 latency).
    runs
        Every run, by placement name, in replication order.
    """

    table: pl.DataFrame
    runs: dict[str, list[RunResult]]


def compare(
    scenario: str | os.PathLike[str],
    placements: Sequence[str],
    *,
    replications: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> Comparison:
    """Run each placement on the same requests and tabulate the differences.

    Parameters
    ----------
    scenario
        The scenario file.
    placements
        Names from the scenario's ``placements`` or policy names.
    replications
        Seeds per placement (``seed`` to ``seed + replications - 1``).
    out_dir
        Folder for ``comparison.parquet`` and one sub-folder per run.
    progress
        Called with the share of runs done.

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        When the scenario is invalid or names an unknown placement.

    Examples
    --------
    >>> compare("scenarios/store_chat.yaml", ["cloud", "edge"])  # doctest: +SKIP
    """
    loaded = load_scenario(scenario)
    variants = {name: _variant(loaded, name) for name in placements}
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="placesim-"))
    folder.mkdir(parents=True, exist_ok=True)

    runs: dict[str, list[RunResult]] = {name: [] for name in placements}
    total = len(placements) * replications
    for i, (name, variant) in enumerate(
        (n, v) for n, v in variants.items() for _ in range(replications)
    ):
        seed = loaded.scenario.seed + len(runs[name])
        target = folder / name / f"seed{seed}"
        try:
            result = run(with_overrides(variant, seed=seed), out_dir=target)
        except LookupError as err:
            msg = f"placement {name!r} cannot serve this scenario: {err}"
            raise PlacesimError(msg) from None
        runs[name].append(result)
        if progress is not None:
            progress((i + 1) / total)

    table = _table(runs)
    write_parquet_atomic(table, folder / COMPARISON_FILE)
    return Comparison(table, runs)


def _variant(loaded: LoadedScenario, name: str) -> LoadedScenario:
    """The scenario with every class placed by placement `name`."""
    named = loaded.scenario.placements
    if name in named:
        placement = named[name]
    elif name in POLICIES:
        placement = Placement(policy=name)
    else:
        known = sorted({*named, *POLICIES})
        from sim.errors import Problem, closest

        raise InputError(
            [
                Problem(
                    str(loaded.scenario_path),
                    None,
                    None,
                    "placements",
                    f"a placement of the scenario or a policy ({', '.join(known)})",
                    repr(name),
                    closest(name, known),
                )
            ]
        )
    classes = [
        c.model_copy(update={"placement": placement}) for c in loaded.scenario.classes
    ]
    scenario = loaded.scenario.model_copy(update={"classes": classes})
    return LoadedScenario(
        scenario,
        loaded.topology,
        loaded.scenario_path,
        loaded.topology_path,
        loaded.catalog,
    )


def _run_row(result: RunResult) -> dict[str, float | None]:
    overall = result.summary.filter(pl.col("scope") == "overall").row(0, named=True)
    scale = MONTH_S / result.window.length_s
    by_category = dict(
        result.costs.by_category().select("category", "cost_usd").iter_rows()
    )
    requests = overall["requests"] or 1
    row: dict[str, float | None] = {
        "latency_p50_ms": overall["latency_p50_ms"],
        "latency_p95_ms": overall["latency_p95_ms"],
        "latency_p99_ms": overall["latency_p99_ms"],
        "ttft_p95_ms": overall.get("ttft_p95_ms"),
        "slo_attainment": overall["slo_attainment"],
        "dropped_share": overall["dropped_share"],
        "usd_per_1k_requests": result.costs.total_usd / requests * 1000.0,
        "monthly_usd": result.costs.total_usd * scale,
    }
    for category in CATEGORIES:
        row[f"monthly_{category}_usd"] = by_category.get(category, 0.0) * scale
    return row


def _table(runs: dict[str, list[RunResult]]) -> pl.DataFrame:
    rows = []
    for name, results in runs.items():
        per_run = [_run_row(r) for r in results]
        row: dict[str, object] = {"placement": name, "replications": len(results)}
        for key in per_run[0]:
            values = [r[key] for r in per_run if r[key] is not None]
            mean, half = _mean_ci(values)
            row[key] = mean
            if key in METRICS:
                row[f"{key}_ci95"] = half
        rows.append(row)

    table = pl.DataFrame(rows)
    table = table.with_columns(
        best_in=pl.Series([_best_in(table, i) for i in range(table.height)]),
        pareto=pl.Series(
            pareto_front(
                table["monthly_usd"].to_list(), table["latency_p95_ms"].to_list()
            )
        ),
    )
    return table


def _mean_ci(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    from scipy.stats import t

    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, float(t.ppf(0.975, len(values) - 1)) * math.sqrt(
        variance / len(values)
    )


def _best_in(table: pl.DataFrame, index: int) -> str:
    """Comma-separated metrics in which row `index` is best (ties count)."""
    best = []
    for metric, lower in METRICS.items():
        if metric not in table.columns or table[metric].null_count() == table.height:
            continue
        column = table[metric]
        target = column.min() if lower else column.max()
        if column[index] is not None and column[index] == target:
            best.append(metric)
    return ",".join(best)


def pareto_front(
    cost: Sequence[float | None], latency: Sequence[float | None]
) -> list[bool]:
    """Which points no other point beats on both cost and latency.

    A point is dominated when another is no worse on both and better on one.

    Examples
    --------
    >>> pareto_front([1.0, 2.0, 3.0, 2.0], [5.0, 3.0, 1.0, 4.0])
    [True, True, True, False]
    """
    points = list(zip(cost, latency, strict=True))
    front = []
    for i, (c, lat) in enumerate(points):
        if c is None or lat is None:
            front.append(False)
            continue
        dominated = any(
            oc is not None
            and ol is not None
            and oc <= c
            and ol <= lat
            and (oc < c or ol < lat)
            for j, (oc, ol) in enumerate(points)
            if j != i
        )
        front.append(not dominated)
    return front
