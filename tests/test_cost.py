"""The bill of a run, checked line by line against a hand computation.

The scenario is fully deterministic (fixed arrivals, fixed service times, fixed
sizes), so every quantity a bill depends on is known exactly in advance and the
expected cost of each line is written out from the catalogue's figures below.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.api import run
from sim.catalog import HOURS_PER_MONTH, load_catalog
from sim.cost import MONTH_S, allocate
from sim.errors import InputError
from sim.focus import FOCUS_MANDATORY, focus_frame
from sim.schema import load_scenario

WINDOW_S = 100.0
N_PER_CLASS = 1000  # fixed arrivals every 100 ms for 100 s
RESPONSE_BYTES = {"remote": 1_000_000, "batch": 500_000}

TOPOLOGY: dict[str, Any] = {
    "name": "bill",
    "nodes": [
        {"name": "users", "kind": "device"},
        {
            "name": "edge",
            "kind": "edge_site",
            "pools": [
                {
                    "name": "edge-pool",
                    "servers": 1,
                    "service_time_ms": {"distribution": "deterministic", "value": 10},
                    "cost": {
                        "edge_hardware": "jetson-agx-orin-64gb",
                        "electricity": "us-commercial-state-median-2023",
                    },
                }
            ],
        },
        {
            "name": "cloud",
            "kind": "cloud",
            "pools": [
                {
                    "name": "cloud-od",
                    "servers": 2,
                    "service_time_ms": {"distribution": "deterministic", "value": 20},
                    "cost": {"instance": "aws-g6.xlarge", "pricing": "on_demand"},
                },
                {
                    "name": "cloud-c1",
                    "servers": 2,
                    "service_time_ms": {"distribution": "deterministic", "value": 20},
                    "cost": {"instance": "aws-g6.xlarge", "pricing": "committed_1y"},
                },
            ],
            "storage": [
                {
                    "entry": "aws-s3-standard-us-east-1",
                    "gb": 100,
                    "what": "weights",
                    "reads_per_request": 1,
                }
            ],
        },
    ],
    "links": [
        {"a": "users", "b": "edge", "latency_ms": 1, "bandwidth_mbps": 1000},
        {
            "a": "edge",
            "b": "cloud",
            "latency_ms": 10,
            "bandwidth_mbps": 10000,
            "price": {"transfer": "aws-internet-egress-us-east-1", "from": "cloud"},
        },
    ],
}


def _class(
    name: str, pool: str, start_ms: float, response_bytes: int
) -> dict[str, Any]:
    return {
        "name": name,
        "origin": "users",
        "arrival": {"process": "fixed", "interval_ms": 100, "start_ms": start_ms},
        "placement": {"pool": pool},
        "request_bytes": 1000,
        "response_bytes": response_bytes,
        "tags": {"team": "a" if name != "batch" else "b"},
    }


SCENARIO: dict[str, Any] = {
    "name": "bill",
    "topology": "topology.yaml",
    "seed": 1,
    "duration_s": WINDOW_S,
    "cost_allocation": "busy_time",
    "classes": [
        _class("local", "edge-pool", 0, 1000),
        _class("remote", "cloud-od", 10, RESPONSE_BYTES["remote"]),
        _class("batch", "cloud-c1", 20, RESPONSE_BYTES["batch"]),
    ],
}


def write(folder: Path, scenario: dict[str, Any], topology: dict[str, Any]) -> Path:
    (folder / "topology.yaml").write_text(yaml.safe_dump(topology))
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


@pytest.fixture(scope="module")
def bill(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("bill")
    return run(write(folder, SCENARIO, TOPOLOGY), out_dir=folder / "out")


def line(result: Any, category: str, resource: str) -> dict[str, Any]:
    rows = result.costs.lines.filter(
        (pl.col("category") == category) & (pl.col("resource") == resource)
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def cents(usd: float) -> int:
    return round(usd * 100)


# --- the hand computation ----------------------------------------------------

CATALOG = load_catalog()
HOURS = WINDOW_S / 3600.0


def test_on_demand_compute_is_instances_times_hours_times_price(bill: Any) -> None:
    # 2 servers = 2 instances of aws-g6.xlarge at 0.8048 USD/h for 100 s.
    price = CATALOG.instance("aws-g6.xlarge").on_demand_usd_per_h
    expected = 2 * HOURS * price  # 2 x 0.027778 h x 0.8048 = 0.044711
    got = line(bill, "compute", "cloud-od")
    assert got["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert cents(got["cost_usd"]) == cents(expected) == 4


def test_committed_compute_uses_the_committed_price(bill: Any) -> None:
    entry = CATALOG.instance("aws-g6.xlarge")
    expected = 2 * HOURS * entry.committed_1y_usd_per_h  # 2 x 0.027778 x 0.503
    got = line(bill, "compute", "cloud-c1")
    assert got["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert got["pricing"] == "committed_1y"
    # The same hours on demand cost more: the commitment's saving.
    assert got["cost_usd"] < line(bill, "compute", "cloud-od")["cost_usd"]


def test_busy_cost_is_the_busy_share_of_the_compute(bill: Any) -> None:
    # 1000 requests x 20 ms on 2 servers over 100 s: utilisation 0.1.
    got = line(bill, "compute", "cloud-od")
    assert got["busy_cost_usd"] == pytest.approx(got["cost_usd"] * 0.1, rel=1e-9)


def test_edge_hardware_is_amortised_per_hour(bill: Any) -> None:
    entry = CATALOG.edge_hardware("jetson-agx-orin-64gb")
    per_hour = entry.purchase_usd / (entry.amortisation_months * HOURS_PER_MONTH)
    expected = HOURS * per_hour  # 1999 / (36 x 730) = 0.076066 USD/h, for 100 s
    got = line(bill, "edge_hardware", "edge-pool")
    assert got["cost_usd"] == pytest.approx(expected, rel=1e-12)


def test_energy_follows_idle_and_busy_power(bill: Any) -> None:
    # 1000 requests x 10 ms on 1 server over 100 s: utilisation 0.1.
    hardware = CATALOG.edge_hardware("jetson-agx-orin-64gb")
    kwh = (hardware.idle_w + (hardware.busy_w - hardware.idle_w) * 0.1) * HOURS / 1000
    usd_per_kwh = CATALOG.electricity("us-commercial-state-median-2023").usd_per_kwh
    got = line(bill, "energy", "edge-pool")
    assert got["quantity"] == pytest.approx(kwh, rel=1e-9)  # (12 + 48 x 0.1) W
    assert got["cost_usd"] == pytest.approx(kwh * usd_per_kwh, rel=1e-9)


def test_egress_tiers_apply_to_the_monthly_volume_across_a_boundary(bill: Any) -> None:
    # Responses leaving the cloud: 1000 x 1 MB + 1000 x 0.5 MB = 1.5 GB in 100 s.
    window_gb = N_PER_CLASS * sum(RESPONSE_BYTES.values()) / 1e9
    month_gb = window_gb * MONTH_S / WINDOW_S  # 1.5 x 25,920 = 38,880 GB a month
    # 100 GB free, then 10,240 GB at 0.09, then the rest (28,540 GB) at 0.085:
    billable = month_gb - 100
    month_usd = 10_240 * 0.09 + (billable - 10_240) * 0.085  # 921.6 + 2425.9
    expected = month_usd * WINDOW_S / MONTH_S  # 3347.5 / 25,920 = 0.129147
    got = line(bill, "transfer", "cloud->edge")
    assert got["quantity"] == pytest.approx(window_gb, rel=1e-12)
    assert got["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert cents(got["cost_usd"]) == 13


def test_ingress_and_unpriced_links_cost_nothing(bill: Any) -> None:
    transfer = bill.costs.lines.filter(pl.col("category") == "transfer")
    assert transfer["resource"].to_list() == ["cloud->edge"]


def test_storage_is_gb_months_plus_reads(bill: Any) -> None:
    entry = CATALOG.storage("aws-s3-standard-us-east-1")
    months = WINDOW_S / (HOURS_PER_MONTH * 3600)
    reads = 2 * N_PER_CLASS  # requests served by the cloud's pools
    expected = 100 * entry.usd_per_gb_month * months + reads / 1000 * 0.0004
    got = line(bill, "storage", "cloud:weights")
    assert got["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_total_is_the_sum_of_the_lines_to_the_cent(bill: Any) -> None:
    entry = CATALOG.instance("aws-g6.xlarge")
    hardware = CATALOG.edge_hardware("jetson-agx-orin-64gb")
    storage = CATALOG.storage("aws-s3-standard-us-east-1")
    by_hand = (
        2 * HOURS * entry.on_demand_usd_per_h
        + 2 * HOURS * entry.committed_1y_usd_per_h
        + HOURS * hardware.purchase_usd / (hardware.amortisation_months * 730)
        + (12 + 48 * 0.1) * HOURS / 1000 * 0.1172
        + (10_240 * 0.09 + (38_880 - 100 - 10_240) * 0.085) * WINDOW_S / MONTH_S
        + 100 * storage.usd_per_gb_month * WINDOW_S / (730 * 3600)
        + 2 * 0.0004
    )
    assert cents(bill.costs.total_usd) == cents(by_hand)
    overall = bill.summary.filter(pl.col("scope") == "overall").row(0, named=True)
    assert overall["cost_usd"] == pytest.approx(bill.costs.total_usd)
    assert overall["cost_per_request_usd"] == pytest.approx(
        bill.costs.total_usd / (3 * N_PER_CLASS)
    )


# --- sharing -----------------------------------------------------------------


def test_class_shares_add_up_exactly_to_the_total(bill: Any) -> None:
    micro = bill.costs.by_class["cost_usd"].map_elements(
        lambda usd: round(usd * 1e6), return_dtype=pl.Int64
    )
    lines_micro = sum(round(usd * 1e6) for usd in bill.costs.lines["cost_usd"])
    assert micro.sum() == lines_micro


def test_each_class_pays_for_what_it_used(bill: Any) -> None:
    by_class = dict(bill.costs.by_class.iter_rows())
    compute_od = line(bill, "compute", "cloud-od")["cost_usd"]
    edge = line(bill, "edge_hardware", "edge-pool")["cost_usd"]
    # `local` alone used the edge pool, `remote` alone the on-demand pool.
    assert by_class["local"] >= edge
    assert by_class["remote"] >= compute_od
    assert set(by_class) == {"local", "remote", "batch"}


def test_tag_showback_adds_up_for_every_key(bill: Any) -> None:
    tags = bill.costs.by_tag(bill.loaded)
    assert tags.filter(pl.col("tag") == "team")["value"].to_list() == ["a", "b"]
    total = tags.group_by("tag").agg(pl.col("cost_usd").sum())["cost_usd"][0]
    assert round(total * 1e6) == round(bill.costs.total_usd * 1e6)


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, {"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 34, "b": 33, "c": 33}),
        # Exact shares 3.5, 1.75, 1.75: floors 3, 1, 1; the two micro-dollars
        # left go to the largest remainders, b and c (0.75 each).
        (7, {"a": 0.5, "b": 0.25, "c": 0.25}, {"a": 3, "b": 2, "c": 2}),
        (5, {"a": 0.0}, {"(idle)": 5}),
        (0, {"a": 2.0, "b": 1.0}, {"a": 0, "b": 0}),
    ],
)
def test_allocate_is_exact_and_by_largest_remainder(
    total: int, weights: dict[str, float], expected: dict[str, int]
) -> None:
    assert allocate(total, weights) == expected


@given(
    total=st.integers(min_value=0, max_value=10**12),
    weights=st.dictionaries(
        st.sampled_from("abcdefgh"), st.floats(0, 1e6, allow_nan=False), min_size=1
    ),
)
def test_allocate_always_sums_to_the_total(
    total: int, weights: dict[str, float]
) -> None:
    parts = allocate(total, weights)
    assert sum(parts.values()) == total
    assert all(part >= 0 for part in parts.values())


# --- FOCUS -------------------------------------------------------------------


def test_focus_export_has_every_mandatory_column_with_its_type(bill: Any) -> None:
    frame = focus_frame(bill.costs, bill.loaded)
    assert set(FOCUS_MANDATORY) <= set(frame.columns)
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert frame.schema[column] == pl.Float64
    for column in ("BillingPeriodStart", "ChargePeriodEnd"):
        assert frame.schema[column] == pl.Datetime("us", "UTC")
    assert all(c.startswith("x_") for c in frame.columns if c[0].islower())
    assert frame["BillingCurrency"].unique().to_list() == ["USD"]
    assert frame["BilledCost"].sum() == pytest.approx(bill.costs.total_usd, abs=1e-9)


def test_focus_pricing_categories_follow_the_pricing_model(bill: Any) -> None:
    frame = focus_frame(bill.costs, bill.loaded)
    category = dict(
        frame.select("ResourceName", "PricingCategory").unique().iter_rows()
    )
    assert category["cloud-od"] == "Standard"
    assert category["cloud-c1"] == "Committed"
    committed = frame.filter(pl.col("ResourceName") == "cloud-c1").row(0, named=True)
    assert committed["ListCost"] > committed["EffectiveCost"]
    assert json.loads(committed["Tags"]) == {"placesim-class": "batch", "team": "b"}


# --- errors and invariants ---------------------------------------------------


def test_an_unknown_catalogue_name_names_the_closest(tmp_path: Path) -> None:
    topology = json.loads(json.dumps(TOPOLOGY))
    topology["nodes"][2]["pools"][0]["cost"]["instance"] = "aws-g6.xlarg"
    with pytest.raises(InputError) as caught:
        load_scenario(write(tmp_path, SCENARIO, topology))
    (problem,) = caught.value.problems
    assert problem.field == "nodes[2].pools[0].cost.instance"
    assert problem.found == "'aws-g6.xlarg', which is not in it"
    assert problem.suggestion == "aws-g6.xlarge"


def test_internet_egress_without_a_from_end_is_refused(tmp_path: Path) -> None:
    topology = json.loads(json.dumps(TOPOLOGY))
    topology["links"][1]["price"] = "aws-internet-egress-us-east-1"
    with pytest.raises(InputError) as caught:
        load_scenario(write(tmp_path, SCENARIO, topology))
    (problem,) = caught.value.problems
    assert problem.field == "links[1].price"
    assert problem.found == "no `from`"


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rate=st.floats(1, 200),
    servers=st.integers(1, 4),
    response_bytes=st.integers(0, 5_000_000),
    pricing=st.sampled_from(["on_demand", "committed_1y", "committed_3y", "spot"]),
    rule=st.sampled_from(["requests", "bytes", "busy_time"]),
)
def test_costs_are_never_negative(
    tmp_path: Path,
    rate: float,
    servers: int,
    response_bytes: int,
    pricing: str,
    rule: str,
) -> None:
    topology = json.loads(json.dumps(TOPOLOGY))
    topology["nodes"][2]["pools"][0].update(
        servers=servers, cost={"instance": "aws-g6.xlarge", "pricing": pricing}
    )
    scenario = json.loads(json.dumps(SCENARIO))
    scenario.update(duration_s=5, cost_allocation=rule)
    scenario["classes"][1].update(
        arrival={"process": "poisson", "rate_per_s": rate},
        response_bytes=response_bytes,
    )
    result = run(write(tmp_path, scenario, topology), out_dir=tmp_path / "out")
    lines = result.costs.lines
    assert (lines["cost_usd"] >= 0).all()
    assert (lines["busy_cost_usd"].drop_nulls() >= 0).all()
    assert (result.costs.by_class["cost_usd"] >= 0).all()
    assert not math.isnan(result.costs.total_usd)


# --- CDN ------------------------------------------------------------------------


def test_cdn_bills_delivery_requests_and_the_fill_of_misses(tmp_path: Path) -> None:
    # users - cdn-pop (cache, CloudFront) - cloud; 1 MB responses, 10/s, 100 s.
    topology = {
        "name": "cdn",
        "nodes": [
            {"name": "users", "kind": "device"},
            {
                "name": "pop",
                "kind": "cdn",
                "cdn": "aws-cloudfront-na-eu",
                "cache": {"kind": "exact", "hit_ratio": 0.6, "hit_latency_ms": 2},
            },
            {
                "name": "cloud",
                "kind": "cloud",
                "pools": [
                    {
                        "name": "origin-pool",
                        "servers": 2,
                        "service_time_ms": {
                            "distribution": "deterministic",
                            "value": 5,
                        },
                    }
                ],
            },
        ],
        "links": [
            {"a": "users", "b": "pop", "latency_ms": 2, "bandwidth_mbps": 1000},
            {"a": "pop", "b": "cloud", "latency_ms": 20, "bandwidth_mbps": 1000},
        ],
    }
    spec = {
        "name": "cdn",
        "topology": "topology.yaml",
        "seed": 4,
        "duration_s": WINDOW_S,
        "classes": [
            {
                "name": "assets",
                "origin": "users",
                "arrival": {"process": "fixed", "interval_ms": 100},
                "placement": {"pool": "origin-pool"},
                "response_bytes": 1_000_000,
            }
        ],
    }
    result = run(write(tmp_path, spec, topology), out_dir=tmp_path / "out")
    ledger = result.requests().collect()
    hits = int(ledger["cache_hit"].sum())
    misses = ledger.height - hits
    # About 60 % hits (binomial 99 % interval for 1,000 requests: +-0.04).
    assert abs(hits / ledger.height - 0.6) < 0.04

    entry = CATALOG.cdn("aws-cloudfront-na-eu")
    scale = MONTH_S / WINDOW_S  # 25,920 windows in a 30-day month
    month_gb = ledger.height * 1e6 / 1e9 * scale  # 1 GB x 25,920 = 25,920 GB
    # 1,024 GB free, then 10,240 GB at 0.085 and the rest at 0.08:
    delivery = (10_240 * 0.085 + (month_gb - 1_024 - 10_240) * 0.08) / scale
    month_requests = ledger.height * scale  # 25.9 million, 10 million free
    requests_usd = (month_requests - 10_000_000) / 10_000 * 0.01 / scale
    fill = misses * 1e6 / 1e9 * entry.cache_fill_usd_per_gb  # free from S3: 0
    got = line(result, "cdn", "pop")
    assert got["cost_usd"] == pytest.approx(delivery + requests_usd + fill, rel=1e-9)
    assert cents(got["cost_usd"]) == cents(delivery + requests_usd + fill)
