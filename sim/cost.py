"""Money: cost lines from a run's ledger, its topology and the price catalogue.

Every figure is for the measurement window ``[warmup_s, horizon_s]`` of the
run, in US dollars. The rules:

* **Compute** (pools with a catalogue ``instance``): instances are provisioned
  for the whole window, ``instances x hours x price`` under the pool's pricing
  model (on-demand, 1- or 3-year committed, spot). ``busy_cost_usd`` is what
  the busy server-seconds alone would cost, so the idle share is visible.
* **Edge hardware** (pools with ``edge_hardware``): the purchase price spread
  evenly over its life (:data:`sim.catalog.HOURS_PER_MONTH` hours a month),
  per unit-hour of the window.
* **Energy** of edge hardware: ``(idle_w + (busy_w - idle_w) x utilisation) x
  hours x units / 1000`` kWh at the electricity price.
* **Transfer**: the bytes that cross each priced link in its priced
  direction. Providers' volume tiers are monthly, so each catalogue entry's
  bytes over all links are projected to a 30-day month, priced on the tiers
  with the free allowance, and scaled back to the window; each link gets its
  share by bytes. A link with an inline ``usd_per_gb`` is priced flat.
* **Storage**: GB stored at a node for the window (GB-months of
  :data:`sim.catalog.HOURS_PER_MONTH` hours), plus reads and writes per 1,000
  operations for the requests served by that node's pools.

Every cost line is then shared among the request classes that used it
(:func:`allocate`): transfer by bytes, the rest by the scenario's
``cost_allocation`` rule. Shares are whole micro-dollars assigned by the largest
remainder, so they add up exactly to the line.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sim.catalog import (
    HOURS_PER_MONTH,
    Catalog,
    TransferEntry,
    instance_usd_per_h,
    tiered_cost_usd,
)
from sim.ledger import Window
from sim.schema import LinkPrice, LoadedScenario, Pool, PoolCost
from sim.topology import Network

__all__ = [
    "COST_LINE_COLUMNS",
    "MONTH_S",
    "CostReport",
    "PoolTerms",
    "allocate",
    "cost_report",
    "pool_terms",
    "pool_usd_per_h",
]

MONTH_S = 30 * 86_400.0
"""A month for projections and for volume tiers: 30 days, in seconds."""
_MICRO = 1_000_000
_BYTES = {"GB": 1e9, "GiB": float(2**30)}

COST_LINE_COLUMNS = {
    "category": pl.String,
    "resource": pl.String,
    "node": pl.String,
    "entry": pl.String,
    "pricing": pl.String,
    "quantity": pl.Float64,
    "unit": pl.String,
    "unit_price_usd": pl.Float64,
    "cost_usd": pl.Float64,
    "busy_cost_usd": pl.Float64,
    "provider": pl.String,
    "region": pl.String,
    "note": pl.String,
}
"""Columns of a cost-line frame, in order."""

CATEGORIES = ("compute", "edge_hardware", "energy", "transfer", "cdn", "storage")


@dataclass(frozen=True)
class CostReport:
    """A run's cost lines and how they are shared among request classes.

    Attributes
    ----------
    lines
        One row per priced resource; columns :data:`COST_LINE_COLUMNS`.
    by_class
        ``class, cost_usd``: every line allocated to the classes that used it
        (a line nobody used goes to ``(idle)``); sums exactly to the total.
    by_class_line
        The same, per line: ``line, class, cost_usd``.
    window
        The window the costs cover.
    """

    lines: pl.DataFrame
    by_class: pl.DataFrame
    by_class_line: pl.DataFrame
    window: Window

    @property
    def total_usd(self) -> float:
        """Total cost of the window (the sum of the rounded class shares)."""
        return float(self.by_class["cost_usd"].sum())

    def by_category(self) -> pl.DataFrame:
        """Cost per category for the window and projected to a 30-day month."""
        scale = MONTH_S / self.window.length_s
        return (
            self.lines.group_by("category")
            .agg(pl.col("cost_usd").sum())
            .with_columns(monthly_usd=pl.col("cost_usd") * scale)
            .sort(pl.col("category").replace_strict(_category_order()))
        )

    def by_tag(self, loaded: LoadedScenario) -> pl.DataFrame:
        """Showback: cost per tag key and value, from the classes' tags.

        A class without a given key counts under ``(untagged)``; idle cost under
        ``(idle)``. For each key the values add up exactly to the total.
        """
        tags = {c.name: c.tags for c in loaded.scenario.classes}
        keys = sorted({key for class_tags in tags.values() for key in class_tags})
        rows = []
        for key in keys:
            for name, cost_usd in self.by_class.iter_rows():
                value = tags[name].get(key, "(untagged)") if name in tags else name
                rows.append((key, value, cost_usd))
        frame = pl.DataFrame(
            rows,
            schema={"tag": pl.String, "value": pl.String, "cost_usd": pl.Float64},
            orient="row",
        )
        return (
            frame.group_by("tag", "value")
            .agg(pl.col("cost_usd").sum())
            .sort("tag", "value")
        )


def _category_order() -> dict[str, int]:
    return {name: i for i, name in enumerate(CATEGORIES)}


def cost_report(
    ledger: Path,
    loaded: LoadedScenario,
    window: Window,
    *,
    provisioned: Collection[str] | None = None,
    previous_pools: Iterable[tuple[str, str, int, str]] = (),
) -> CostReport:
    """Price a run: cost lines for every resource, shared among classes.

    Parameters
    ----------
    ledger
        The run's ``requests.parquet``.
    loaded
        The scenario and topology that produced it, with its catalogue.
    window
        The measurement window.
    provisioned
        The pools the placement can use (the engine's
        :attr:`~sim.engine.EngineStats.provisioned`); only these are paid for.
        None pays for every pool with a cost.
    previous_pools
        ``(class, origin, stage, pool)``: the pool a chained stage came from,
        for the bytes between pools (the engine's
        :attr:`~sim.engine.EngineStats.previous_pools`).

    Returns
    -------
    CostReport

    Examples
    --------
    >>> report = cost_report(ledger_path, loaded, window)  # doctest: +SKIP
    >>> report.by_category()  # doctest: +SKIP
    """
    usage = _ledger_usage(ledger, window)
    network = Network(loaded.topology)
    lines: list[dict[str, object]] = []
    shares: dict[int, dict[str, float]] = {}

    pool_usage = _per_pool_usage(usage, loaded)
    for node in loaded.topology.nodes:
        for pool in node.pools:
            if pool.cost is None or (
                provisioned is not None and pool.name not in provisioned
            ):
                continue
            used = pool_usage.get(pool.name, {})
            utilisation = _utilisation(used, pool, window)
            weights = {c: u[loaded.scenario.cost_allocation] for c, u in used.items()}
            for line in _pool_lines(
                pool, node.name, pool.cost, utilisation, window, loaded.catalog
            ):
                shares[len(lines)] = weights
                lines.append(line)

    previous = {(c, o, s): p for c, o, s, p in previous_pools}
    for line, weights in _transfer_lines(usage, loaded, network, window, previous):
        shares[len(lines)] = weights
        lines.append(line)

    for line, weights in _storage_lines(usage, loaded, window):
        shares[len(lines)] = weights
        lines.append(line)

    for line, weights in _cdn_lines(usage, loaded, network, window):
        shares[len(lines)] = weights
        lines.append(line)

    frame = (
        pl.DataFrame(lines, schema=COST_LINE_COLUMNS)
        if lines
        else pl.DataFrame(schema=COST_LINE_COLUMNS)
    )
    per_line = [
        (i, name, micro / _MICRO)
        for i, line in enumerate(lines)
        for name, micro in allocate(
            _to_micro(float(line["cost_usd"])), shares[i]
        ).items()
    ]
    by_class_line = pl.DataFrame(
        per_line,
        schema={"line": pl.Int64, "class": pl.String, "cost_usd": pl.Float64},
        orient="row",
    )
    by_class = (
        by_class_line.group_by("class").agg(pl.col("cost_usd").sum()).sort("class")
    )
    return CostReport(frame, by_class, by_class_line, window)


# --- sharing ------------------------------------------------------------------


def allocate(total_micro: int, weights: dict[str, float]) -> dict[str, int]:
    """Split whole micro-dollars among names by weight, exactly.

    Each name gets the floor of its exact share, and the micro-dollars left
    over go one each to the largest remainders (ties by name), so the parts
    always add up to `total_micro`. With no positive weight, everything goes
    to ``(idle)``.

    Examples
    --------
    >>> allocate(100, {"a": 1.0, "b": 1.0, "c": 1.0})
    {'a': 34, 'b': 33, 'c': 33}
    """
    positive = {k: w for k, w in sorted(weights.items()) if w > 0}
    if not positive:
        return {"(idle)": total_micro}

    weight_sum = sum(positive.values())
    exact = {k: total_micro * w / weight_sum for k, w in positive.items()}
    parts = {k: math.floor(v) for k, v in exact.items()}
    left = total_micro - sum(parts.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - parts[k]), k))
    for name in by_remainder[:left]:
        parts[name] += 1
    return parts


def _to_micro(usd: float) -> int:
    return round(usd * _MICRO)


# --- what the ledger says was used ----------------------------------------------


def _ledger_usage(ledger: Path, window: Window) -> pl.DataFrame:
    """Per class, origin, pool, stage, final and outcome: counts, bytes, busy time.

    Counts, bytes and tokens cover requests that arrived in the window; busy
    time is every service interval's overlap with the window.
    """
    start = pl.col("pool_arrival_s") + pl.col("queue_wait_s")
    end = start + pl.col("service_s")
    # clip() rather than min/max_horizontal: the latter defeat streaming.
    overlap = end.clip(upper_bound=window.horizon_s) - start.clip(
        lower_bound=window.warmup_s
    )
    tokens = pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)
    measured = pl.col("measured")
    # Plain columns multiplied by a 0/1 flag, grouped on the ledger's own
    # categorical columns: polars' streaming engine then aggregates chunk by
    # chunk (conditional expressions inside `agg` make it hold whole columns).
    usage = (
        pl.scan_parquet(ledger)
        .with_columns(
            measured=(~pl.col("warmup")).cast(pl.Int64),
            tokens=tokens,
            busy_s=overlap.clip(lower_bound=0.0).fill_null(0.0),
        )
        .group_by("class", "origin", "pool", "stage", "final", "outcome", "cache_hit")
        .agg(
            requests=measured.sum(),
            request_bytes=(pl.col("request_bytes") * measured).sum(),
            response_bytes=(pl.col("response_bytes") * measured).sum(),
            tokens=(pl.col("tokens") * measured).sum(),
            busy_s=pl.col("busy_s").sum(),
        )
        .collect(engine="streaming")
    )
    return usage.with_columns(
        pl.col("class", "origin", "pool").cast(pl.String),
        served=pl.col("outcome").cast(pl.String) == "served",
    ).drop("outcome")


def _per_pool_usage(
    usage: pl.DataFrame, loaded: LoadedScenario
) -> dict[str, dict[str, dict[str, float]]]:
    """pool -> class -> {requests, bytes, busy_time} used there."""
    result: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    totals = usage.group_by("pool", "class").agg(
        requests=pl.col("requests").sum(),
        bytes=(pl.col("request_bytes") + pl.col("response_bytes")).sum(),
        busy_time=pl.col("busy_s").sum(),
    )
    for row in totals.iter_rows(named=True):
        result[row["pool"]][row["class"]] = {
            "requests": float(row["requests"]),
            "bytes": float(row["bytes"]),
            "busy_time": float(row["busy_time"]),
        }
    return result


def _utilisation(
    used: dict[str, dict[str, float]], pool: Pool, window: Window
) -> float:
    busy_s = sum(u["busy_time"] for u in used.values())
    return min(1.0, busy_s / (pool.servers * window.length_s))


# --- compute, edge hardware and energy --------------------------------------------


@dataclass(frozen=True)
class PoolTerms:
    """A priced pool's figures, overrides applied over the catalogue's.

    Rented pools fill `instances` and `usd_per_h` (per instance); bought ones
    fill `units`, `purchase_usd`, `amortisation_months`, `idle_w`, `busy_w`
    and `usd_per_kwh`.
    """

    entry: str
    instances: float = 0.0
    usd_per_h: float = 0.0
    units: float = 0.0
    purchase_usd: float = 0.0
    amortisation_months: int = 1
    idle_w: float = 0.0
    busy_w: float = 0.0
    usd_per_kwh: float = 0.0

    @property
    def amortised_usd_per_h(self) -> float:
        """One unit's purchase price spread over its life, per hour."""
        return self.purchase_usd / (self.amortisation_months * HOURS_PER_MONTH)


def pool_terms(pool: Pool, cost: PoolCost, catalog: Catalog) -> PoolTerms:
    """Resolve a pool's cost block against the catalogue, once."""
    if cost.instance is not None:
        entry = catalog.instance(cost.instance)
        price = cost.usd_per_h
        if price is None:
            price = instance_usd_per_h(entry, cost.pricing)
        instances = cost.instances if cost.instances is not None else pool.servers
        return PoolTerms(cost.instance, instances=instances, usd_per_h=price)

    assert cost.edge_hardware is not None
    hardware = catalog.edge_hardware(cost.edge_hardware)
    usd_per_kwh = (
        cost.usd_per_kwh
        if cost.usd_per_kwh is not None
        else catalog.electricity(str(cost.electricity)).usd_per_kwh
    )
    return PoolTerms(
        cost.edge_hardware,
        units=cost.units if cost.units is not None else pool.servers,
        purchase_usd=_pick(cost.purchase_usd, hardware.purchase_usd),
        amortisation_months=int(
            _pick(cost.amortisation_months, hardware.amortisation_months)
        ),
        idle_w=_pick(cost.idle_w, hardware.idle_w),
        busy_w=_pick(cost.busy_w, hardware.busy_w),
        usd_per_kwh=usd_per_kwh,
    )


def pool_usd_per_h(pool: Pool, catalog: Catalog) -> float:
    """What a pool costs an hour, busy: instances, or hardware plus busy power.

    Examples
    --------
    >>> from sim.catalog import load_catalog
    >>> pool = Pool.model_validate({"name": "p", "servers": 2,
    ...     "cost": {"instance": "aws-g6.xlarge"}})
    >>> round(pool_usd_per_h(pool, load_catalog()), 4)
    1.6096
    """
    if pool.cost is None:
        return 0.0
    terms = pool_terms(pool, pool.cost, catalog)
    if pool.cost.instance is not None:
        return terms.instances * terms.usd_per_h
    energy_usd_per_h = terms.busy_w / 1000.0 * terms.usd_per_kwh
    return terms.units * (terms.amortised_usd_per_h + energy_usd_per_h)


def _pool_lines(
    pool: Pool,
    node: str,
    cost: PoolCost,
    utilisation: float,
    window: Window,
    catalog: Catalog,
) -> list[dict[str, object]]:
    hours = window.length_s / 3600.0
    terms = pool_terms(pool, cost, catalog)
    if cost.instance is not None:
        entry = catalog.instance(cost.instance)
        instances, price = terms.instances, terms.usd_per_h
        cost_usd = instances * hours * price
        return [
            _line(
                "compute", pool.name, node, cost.instance, cost.pricing,
                instances * hours, "instance-hours", price, cost_usd,
                busy_cost_usd=cost_usd * utilisation,
                provider=entry.provider, region=entry.region,
                note=f"{instances:g} x {entry.gpus or entry.vcpus} "
                f"{'GPU' if entry.gpus else 'vCPU'} instance(s) for {hours:.4g} h",
            )
        ]  # fmt: skip

    units, idle_w, busy_w = terms.units, terms.idle_w, terms.busy_w
    per_unit_h = terms.amortised_usd_per_h
    hardware_usd = units * hours * per_unit_h
    kwh = units * (idle_w + (busy_w - idle_w) * utilisation) * hours / 1000.0
    usd_per_kwh = terms.usd_per_kwh
    energy_entry = cost.electricity or "inline"
    return [
        _line(
            "edge_hardware", pool.name, node, terms.entry, "purchase",
            units * hours, "unit-hours", per_unit_h, hardware_usd,
            busy_cost_usd=hardware_usd * utilisation, provider="on-premises",
            note=f"{terms.purchase_usd:g} USD over {terms.amortisation_months} "
            f"months of {HOURS_PER_MONTH:g} h, {units:g} unit(s)",
        ),
        _line(
            "energy", pool.name, node, energy_entry, "metered",
            kwh, "kWh", usd_per_kwh, kwh * usd_per_kwh,
            busy_cost_usd=units * busy_w * utilisation * hours / 1000.0 * usd_per_kwh,
            provider="on-premises",
            note=f"{idle_w:g} W idle, {busy_w:g} W busy, utilisation "
            f"{utilisation:.4f}",
        ),
    ]  # fmt: skip


def _pick(override: float | None, catalogued: float) -> float:
    return catalogued if override is None else override


def _line(
    category: str,
    resource: str,
    node: str,
    entry: str,
    pricing: str,
    quantity: float,
    unit: str,
    unit_price_usd: float,
    cost_usd: float,
    *,
    busy_cost_usd: float | None = None,
    provider: str | None = None,
    region: str | None = None,
    note: str = "",
) -> dict[str, object]:
    return {
        "category": category,
        "resource": resource,
        "node": node,
        "entry": entry,
        "pricing": pricing,
        "quantity": quantity,
        "unit": unit,
        "unit_price_usd": unit_price_usd,
        "cost_usd": cost_usd,
        "busy_cost_usd": busy_cost_usd,
        "provider": provider,
        "region": region,
        "note": note,
    }


# --- transfer -------------------------------------------------------------------


def _transfer_lines(
    usage: pl.DataFrame,
    loaded: LoadedScenario,
    network: Network,
    window: Window,
    previous: dict[tuple[str, str, int], str],
) -> Iterable[tuple[dict[str, object], dict[str, float]]]:
    """One line per priced link direction, volume tiers applied per entry."""
    crossed = _bytes_per_link(usage, loaded, network, previous)
    if not crossed:
        return []

    # Bytes of all links that share a catalogue entry's tiers, per entry.
    by_entry: dict[str, float] = defaultdict(float)
    for (link_index, _, _), per_class in crossed.items():
        price = _priced(loaded, link_index)
        if price.usd_per_gb is None:
            by_entry[price.transfer] += sum(per_class.values())

    out = []
    for (link_index, source, target), per_class in sorted(crossed.items()):
        price = _priced(loaded, link_index)
        entry = loaded.catalog.transfer(price.transfer)
        total_bytes = sum(per_class.values())
        volume = total_bytes / _BYTES[entry.unit]
        cost_usd, note = _transfer_cost(entry, price, volume, by_entry, window)
        out.append(
            (
                _line(
                    "transfer", f"{source}->{target}", source, price.transfer,
                    "standard", volume, entry.unit,
                    cost_usd / volume if volume else 0.0, cost_usd,
                    provider=price.transfer.split("-")[0], note=note,
                ),
                dict(per_class),
            )
        )  # fmt: skip
    return out


def _transfer_cost(
    entry: TransferEntry,
    price: LinkPrice,
    volume: float,
    by_entry: dict[str, float],
    window: Window,
) -> tuple[float, str]:
    if price.usd_per_gb is not None:
        return volume * price.usd_per_gb, f"flat {price.usd_per_gb:g} USD/{entry.unit}"

    entry_volume = by_entry[price.transfer] / _BYTES[entry.unit]
    scale = MONTH_S / window.length_s
    month_usd = tiered_cost_usd(
        entry.effective_tiers(), entry_volume * scale, entry.free_gb_per_month
    )
    entry_usd = month_usd / scale
    share = volume / entry_volume if entry_volume else 0.0
    note = (
        f"tiers applied to {entry_volume * scale:.6g} {entry.unit}/month projected "
        f"from the window (all links on this entry); this link's share {share:.4f}"
    )
    return entry_usd * share, note


def _priced(loaded: LoadedScenario, link_index: int) -> LinkPrice:
    price = loaded.topology.links[link_index].link_price()
    assert price is not None
    return price


def _bytes_per_link(
    usage: pl.DataFrame,
    loaded: LoadedScenario,
    network: Network,
    previous: dict[tuple[str, str, int], str],
) -> dict[tuple[int, str, str], dict[str, float]]:
    """(link, from, to) -> class -> bytes crossing it that way, priced links only."""
    link_index = {
        frozenset((link.a, link.b)): i for i, link in enumerate(loaded.topology.links)
    }
    data = {
        c.name: (c.placement.data_node, c.placement.data_bytes)
        for c in loaded.scenario.classes
        if c.placement.data_node is not None and c.placement.data_bytes
    }
    crossed: dict[tuple[int, str, str], dict[str, float]] = defaultdict(
        lambda: defaultdict(float)
    )

    def add(source: str, target: str, size: float, name: str) -> None:
        if size <= 0 or source == target:
            return
        route = network.route(source, target)
        for u, v in zip(route.nodes, route.nodes[1:], strict=False):
            i = link_index[frozenset((u, v))]
            price = loaded.topology.links[i].link_price()
            if price is not None and price.from_ in (None, u):
                crossed[(i, u, v)][name] += size

    for row in usage.iter_rows(named=True):
        if row["cache_hit"]:
            # Answered by a cache on the way: its bytes never reach the pool.
            # (The stretch up to the cache is not priced: a known shortcut.)
            continue
        pool_node = network.pool_node[row["pool"]]
        if row["stage"] == 0:
            add(row["origin"], pool_node, row["request_bytes"], row["class"])
        else:
            before = previous[(row["class"], row["origin"], row["stage"])]
            add(
                network.pool_node[before], pool_node, row["request_bytes"], row["class"]
            )
        if row["class"] in data and row["stage"] == 0:
            # A data set read where it is not: its bytes move to the compute.
            data_node, data_bytes = data[row["class"]]
            add(data_node, pool_node, data_bytes * row["requests"], row["class"])
        if row["final"] and row["served"]:
            add(pool_node, row["origin"], row["response_bytes"], row["class"])
    return crossed


# --- CDN -----------------------------------------------------------------------


def _cdn_lines(
    usage: pl.DataFrame, loaded: LoadedScenario, network: Network, window: Window
) -> list[tuple[dict[str, object], dict[str, float]]]:
    """Responses delivered through a CDN node: per GB, per request, cache fill.

    A request whose route from its origin to its pool passes a node with a
    ``cdn`` entry is delivered by that CDN: a cache hit (answered by the node's
    response cache) pays delivery of its response and the request fee; a miss
    pays the same plus the fill of its response from the origin to the CDN.
    Volume tiers and free allowances are monthly, as for transfer.
    """
    cdn_nodes = {n.name: n.cdn for n in loaded.topology.nodes if n.cdn is not None}
    if not cdn_nodes:
        return []
    delivered: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0, 0.0])
    )
    final = usage.filter(pl.col("final") & pl.col("served"))
    for row in final.iter_rows(named=True):
        route = network.route(row["origin"], network.pool_node[row["pool"]])
        node = next((n for n in route.nodes if n in cdn_nodes), None)
        if node is None:
            continue
        totals = delivered[node][row["class"]]
        totals[0] += row["response_bytes"]
        totals[1] += row["requests"]
        if not row["cache_hit"]:
            totals[2] += row["response_bytes"]

    scale = MONTH_S / window.length_s
    out = []
    for node, per_class in sorted(delivered.items()):
        entry = loaded.catalog.cdn(str(cdn_nodes[node]))
        unit = _BYTES[entry.unit]
        gb = sum(t[0] for t in per_class.values()) / unit
        requests = sum(t[1] for t in per_class.values())
        fill_gb = sum(t[2] for t in per_class.values()) / unit
        delivery_usd = (
            tiered_cost_usd(entry.tiers, gb * scale, entry.free_gb_per_month) / scale
        )
        billable_requests = max(0.0, requests * scale - entry.free_requests_per_month)
        requests_usd = billable_requests / 10_000 * entry.usd_per_10k_requests / scale
        fill_usd = fill_gb * entry.cache_fill_usd_per_gb
        cost_usd = delivery_usd + requests_usd + fill_usd
        out.append(
            (
                _line(
                    "cdn", node, node, str(cdn_nodes[node]), "standard", gb,
                    entry.unit, cost_usd / gb if gb else 0.0, cost_usd,
                    note=f"delivery {delivery_usd:.6g} + requests {requests_usd:.6g}"
                    f" + cache fill {fill_usd:.6g} USD; {requests:g} requests, "
                    f"{fill_gb:.6g} {entry.unit} filled; tiers and free allowances "
                    "applied to the month projected from the window",
                ),
                {name: t[0] for name, t in per_class.items()},
            )
        )  # fmt: skip
    return out


# --- storage ----------------------------------------------------------------------


def _storage_lines(
    usage: pl.DataFrame, loaded: LoadedScenario, window: Window
) -> list[tuple[dict[str, object], dict[str, float]]]:
    months = window.length_s / (HOURS_PER_MONTH * 3600.0)
    served = usage.filter(pl.col("served"))
    out = []
    for node in loaded.topology.nodes:
        pools = [p.name for p in node.pools]
        per_class = {
            name: float(n)
            for name, n in served.filter(pl.col("pool").is_in(pools))
            .group_by("class")
            .agg(pl.col("requests").sum())
            .iter_rows()
        }
        requests = sum(per_class.values())
        for stored in node.storage:
            entry = loaded.catalog.storage(stored.entry)
            capacity_usd = stored.gb * entry.usd_per_gb_month * months
            ops_usd = (
                requests
                / 1000.0
                * (
                    stored.reads_per_request * entry.usd_per_1k_reads
                    + stored.writes_per_request * entry.usd_per_1k_writes
                )
            )
            out.append(
                (
                    _line(
                        "storage", f"{node.name}:{stored.what}", node.name,
                        stored.entry, "standard", stored.gb * months,
                        f"{entry.unit}-months", entry.usd_per_gb_month,
                        capacity_usd + ops_usd, provider=entry.provider,
                        region=entry.region,
                        note=f"{stored.gb:g} {entry.unit} stored; "
                        f"{ops_usd:.6g} USD of operations for {requests:g} requests",
                    ),
                    per_class,
                )
            )  # fmt: skip
    return out


def tags_json(tags: dict[str, str]) -> str:
    """Tags as the JSON object FOCUS expects in its ``Tags`` column."""
    return json.dumps(tags, sort_keys=True)
