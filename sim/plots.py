"""Figures from summary frames, drawn with matplotlib (Agg, no screen needed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from sim.cost import CATEGORIES

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_comparison"]

_COLOURS = {
    "compute": "#4C72B0",
    "edge_hardware": "#55A868",
    "energy": "#C44E52",
    "transfer": "#8172B2",
    "cdn": "#CCB974",
    "storage": "#64B5CD",
}


def plot_comparison(table: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Draw a comparison: cost against p95 latency, and cost by category.

    The left panel places each placement by its monthly cost and p95 latency,
    joins the Pareto front and labels every point; the right panel stacks
    each placement's monthly cost by category.

    Parameters
    ----------
    table
        :attr:`sim.compare.Comparison.table`.
    path
        The PNG to write (written under a temporary name, then renamed).

    Returns
    -------
    pathlib.Path
        Where the figure was written.

    Examples
    --------
    >>> plot_comparison(comparison.table, "out/compare.png")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    _cost_latency(left, table)
    _cost_by_category(right, table)
    figure.suptitle("Placements compared (monthly cost projected from the window)")

    target = Path(path)
    handle, tmp_name = tempfile.mkstemp(suffix=".png", dir=target.parent or ".")
    os.close(handle)
    try:
        figure.savefig(tmp_name, dpi=120)
        os.replace(tmp_name, target)
    finally:
        plt.close(figure)
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def _cost_latency(axes: Axes, table: pl.DataFrame) -> None:
    cost = table["monthly_usd"].to_list()
    p95 = table["latency_p95_ms"].to_list()
    names = table["placement"].to_list()
    front = table["pareto"].to_list()

    axes.scatter(p95, cost, s=60, c=["#C44E52" if f else "#4C72B0" for f in front])
    for x, y, name in zip(p95, cost, names, strict=True):
        axes.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6))
    on_front = sorted((x, y) for x, y, f in zip(p95, cost, front, strict=True) if f)
    if len(on_front) > 1:
        xs, ys = zip(*on_front, strict=True)
        axes.plot(xs, ys, "--", color="#C44E52", label="Pareto front")
        axes.legend()
    axes.set_xlabel("p95 latency (ms)")
    axes.set_ylabel("monthly cost (USD)")
    axes.set_title("Cost against p95 latency")
    axes.grid(alpha=0.3)


def _cost_by_category(axes: Axes, table: pl.DataFrame) -> None:
    names = table["placement"].to_list()
    bottom = [0.0] * len(names)
    for category in CATEGORIES:
        column = f"monthly_{category}_usd"
        if column not in table.columns:
            continue
        values = table[column].fill_null(0.0).to_list()
        if not any(values):
            continue
        axes.bar(names, values, bottom=bottom, label=category, color=_COLOURS[category])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_ylabel("monthly cost (USD)")
    axes.set_title("Cost by category")
    axes.legend(fontsize="small")
