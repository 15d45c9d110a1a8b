"""The cost ledger in the FinOps FOCUS column set (FOCUS 1.2).

One FOCUS row is written for each cost line and each request class it is
shared with (see :func:`sim.cost.allocate`), so the export is a showback: the
``Tags`` of a row are its class's tags plus ``placesim-class``, and its costs
are the class's exact share. Columns placesim adds are prefixed ``x_``.

Simulated time has no date; the charge period is the measurement window laid
from `start` (by default 2026-01-01 00:00 UTC), and the billing period is the
calendar month that holds the window's start.

Costs: ``EffectiveCost`` = ``BilledCost`` = ``ContractedCost`` = the line's
cost. ``ListCost`` prices the same quantity at the on-demand rate, so for
committed or spot compute it shows what the discount saved.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from sim.cost import CostReport
from sim.schema import LoadedScenario

__all__ = ["FOCUS_MANDATORY", "FOCUS_VERSION", "focus_frame", "write_focus"]

FOCUS_VERSION = "1.2"
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

FOCUS_MANDATORY = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
"""Every column FOCUS 1.2 marks Mandatory (specification/columns, v1.2 tag)."""

_PRICING_CATEGORY = {
    "on_demand": "Standard",
    "committed_1y": "Committed",
    "committed_3y": "Committed",
    "spot": "Dynamic",
    "standard": "Standard",
    "metered": "Standard",
    "purchase": "Other",
}
_SERVICE = {
    "compute": ("Compute", "Virtual Machines"),
    "edge_hardware": ("Compute", "Edge Hardware"),
    "energy": ("Other", "Electricity"),
    "transfer": ("Networking", "Data Transfer"),
    "cdn": ("Networking", "Content Delivery"),
    "storage": ("Storage", "Object Storage"),
}
_DATETIME = pl.Datetime("us", "UTC")


def focus_frame(
    report: CostReport, loaded: LoadedScenario, *, start: datetime = DEFAULT_START
) -> pl.DataFrame:
    """The cost report as FOCUS 1.2 rows, one per cost line and class.

    Parameters
    ----------
    report
        A run's cost report.
    loaded
        The scenario (class tags, names).
    start
        The date the simulated time 0 stands for.

    Returns
    -------
    polars.DataFrame
        The :data:`FOCUS_MANDATORY` columns, the conditional columns that apply
        (PricingCategory, Tags, resource, region, unit prices, commitment) and
        placesim's ``x_`` columns.

    Examples
    --------
    >>> frame = focus_frame(result.costs, result.loaded)  # doctest: +SKIP
    >>> frame["BilledCost"].sum() == result.costs.total_usd  # doctest: +SKIP
    True
    """
    lines = report.lines.with_row_index("line")
    rows = report.by_class_line.join(lines, on="line", suffix="_line")
    period_start = start + timedelta(seconds=report.window.warmup_s)
    period_end = start + timedelta(seconds=report.window.horizon_s)
    billing_start = datetime(period_start.year, period_start.month, 1, tzinfo=UTC)
    billing_end = (billing_start + timedelta(days=32)).replace(day=1)
    tags = {c.name: c.tags for c in loaded.scenario.classes}
    on_demand = _on_demand_prices(loaded)

    records = [
        _record(row, tags, on_demand, loaded) for row in rows.iter_rows(named=True)
    ]
    frame = pl.DataFrame(records, schema=_SCHEMA, orient="row")
    return frame.with_columns(
        BillingPeriodStart=pl.lit(billing_start, _DATETIME),
        BillingPeriodEnd=pl.lit(billing_end, _DATETIME),
        ChargePeriodStart=pl.lit(period_start, _DATETIME),
        ChargePeriodEnd=pl.lit(period_end, _DATETIME),
    ).select(_ORDER)


def write_focus(frame: pl.DataFrame, path: Path) -> None:
    """Write FOCUS rows as CSV or Parquet (by extension), atomically."""
    from sim.api import write_parquet_atomic, write_text_atomic

    if path.suffix.lower() == ".parquet":
        write_parquet_atomic(frame, path)
    else:
        write_text_atomic(frame.write_csv(), path)


def _on_demand_prices(loaded: LoadedScenario) -> dict[str, float]:
    """On-demand price per instance-hour of each compute pool, for ListCost."""
    prices = {}
    for node in loaded.topology.nodes:
        for pool in node.pools:
            if pool.cost is not None and pool.cost.instance is not None:
                entry = loaded.catalog.instance(pool.cost.instance)
                prices[pool.name] = entry.on_demand_usd_per_h
    return prices


def _record(
    row: dict[str, Any],
    tags: dict[str, dict[str, str]],
    on_demand: dict[str, float],
    loaded: LoadedScenario,
) -> dict[str, object]:
    category = str(row["category"])
    pricing = str(row["pricing"])
    cost_usd = float(row["cost_usd"])
    line_usd = float(row["cost_usd_line"])
    share = cost_usd / line_usd if line_usd else 0.0
    quantity = float(row["quantity"]) * share
    list_unit_price = (
        on_demand.get(str(row["resource"]), float(row["unit_price_usd"]))
        if category == "compute"
        else float(row["unit_price_usd"])
    )
    service_category, service_name = _SERVICE[category]
    provider = str(row["provider"] or "on-premises")
    class_name = str(row["class"])
    committed = pricing.startswith("committed")
    return {
        "BilledCost": cost_usd,
        "BillingAccountId": f"placesim:{loaded.scenario.name}",
        "BillingAccountName": f"placesim scenario {loaded.scenario.name}",
        "BillingCurrency": "USD",
        "ChargeCategory": "Purchase" if category == "edge_hardware" else "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{category} {row['resource']}: {row['note']}",
        "ContractedCost": cost_usd,
        "EffectiveCost": cost_usd,
        "InvoiceIssuerName": provider,
        "ListCost": quantity * list_unit_price,
        "PricingQuantity": quantity,
        "PricingUnit": str(row["unit"]),
        "ProviderName": provider,
        "PublisherName": provider,
        "ServiceCategory": service_category,
        "ServiceName": service_name,
        "PricingCategory": _PRICING_CATEGORY.get(pricing, "Other"),
        "ListUnitPrice": list_unit_price,
        "ContractedUnitPrice": float(row["unit_price_usd"]),
        "ConsumedQuantity": quantity,
        "ConsumedUnit": str(row["unit"]),
        "ResourceId": f"{row['node']}/{row['resource']}",
        "ResourceName": str(row["resource"]),
        "ResourceType": category,
        "RegionId": row["region"],
        "RegionName": row["region"],
        "SkuId": str(row["entry"]),
        "CommitmentDiscountCategory": "Usage" if committed else None,
        "CommitmentDiscountId": (
            f"placesim:{row['resource']}:{pricing}" if committed else None
        ),
        "CommitmentDiscountStatus": "Used" if committed else None,
        "CommitmentDiscountType": pricing if committed else None,
        "Tags": json.dumps(
            {"placesim-class": class_name, **tags.get(class_name, {})}, sort_keys=True
        ),
        "x_placesim_category": category,
        "x_placesim_class": class_name,
        "x_placesim_pricing": pricing,
        "x_placesim_scenario": loaded.scenario.name,
        "x_placesim_seed": loaded.scenario.seed,
    }


_SCHEMA: dict[str, pl.DataType] = {
    "BilledCost": pl.Float64(),
    "BillingAccountId": pl.String(),
    "BillingAccountName": pl.String(),
    "BillingCurrency": pl.String(),
    "ChargeCategory": pl.String(),
    "ChargeClass": pl.String(),
    "ChargeDescription": pl.String(),
    "ContractedCost": pl.Float64(),
    "EffectiveCost": pl.Float64(),
    "InvoiceIssuerName": pl.String(),
    "ListCost": pl.Float64(),
    "PricingQuantity": pl.Float64(),
    "PricingUnit": pl.String(),
    "ProviderName": pl.String(),
    "PublisherName": pl.String(),
    "ServiceCategory": pl.String(),
    "ServiceName": pl.String(),
    "PricingCategory": pl.String(),
    "ListUnitPrice": pl.Float64(),
    "ContractedUnitPrice": pl.Float64(),
    "ConsumedQuantity": pl.Float64(),
    "ConsumedUnit": pl.String(),
    "ResourceId": pl.String(),
    "ResourceName": pl.String(),
    "ResourceType": pl.String(),
    "RegionId": pl.String(),
    "RegionName": pl.String(),
    "SkuId": pl.String(),
    "CommitmentDiscountCategory": pl.String(),
    "CommitmentDiscountId": pl.String(),
    "CommitmentDiscountStatus": pl.String(),
    "CommitmentDiscountType": pl.String(),
    "Tags": pl.String(),
    "x_placesim_category": pl.String(),
    "x_placesim_class": pl.String(),
    "x_placesim_pricing": pl.String(),
    "x_placesim_scenario": pl.String(),
    "x_placesim_seed": pl.Int64(),
}
_PERIODS = [
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
]
_ORDER = sorted([*_SCHEMA, *_PERIODS], key=lambda name: (name.startswith("x_"), name))
