"""Properties of every run, checked on random small scenarios with hypothesis.

Each example draws a topology (two devices, an edge site and a cloud, each site
with one pool; random link latencies and bandwidths, servers, queue capacities
including 0 and unlimited, service distributions) and a scenario of one to
three classes (Poisson or fixed arrivals, one or two origins, a single pool, a
weighted split or a two-pool chain, random message sizes), runs it, and checks
the ledger against rules that hold whatever the numbers.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from sim.api import RunResult, run

Writer = Callable[[Path, dict[str, Any], dict[str, Any]], Path]
"""The `write_scenario` fixture of conftest.py."""

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None)
POOLS = ("edge-pool", "cloud-pool")
TOLERANCE_S = 1e-9
"""Slack for sums of float times: each is far below a nanosecond of rounding."""

Spec = tuple[dict[str, Any], dict[str, Any]]


# --- strategies -----------------------------------------------------------------------


def _ms(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


distributions = st.one_of(
    st.builds(lambda mean: {"distribution": "exponential", "mean": mean}, _ms(0.1, 40)),
    st.builds(
        lambda value: {"distribution": "deterministic", "value": value}, _ms(0, 40)
    ),
    st.builds(
        lambda mean, cv: {"distribution": "lognormal", "mean": mean, "cv": cv},
        _ms(0.1, 40),
        _ms(0.1, 3),
    ),
    st.builds(
        lambda low, width: {"distribution": "uniform", "low": low, "high": low + width},
        _ms(0, 20),
        _ms(0.1, 20),
    ),
)
queue_capacities = st.one_of(st.just("unlimited"), st.integers(0, 3))
sizes = st.one_of(
    st.integers(0, 2_000_000),
    st.builds(
        lambda mean, cv: {"distribution": "lognormal", "mean": mean, "cv": cv},
        _ms(1, 1e6),
        _ms(0.1, 2),
    ),
)
poisson = st.builds(
    lambda rate: {"process": "poisson", "rate_per_s": rate}, _ms(1, 400)
)
fixed = st.builds(
    lambda interval, start: {
        "process": "fixed",
        "interval_ms": interval,
        "start_ms": start,
    },
    _ms(0.5, 40),
    _ms(0, 20),
)
placements = st.one_of(
    st.sampled_from(POOLS).map(lambda pool: {"pool": pool}),
    st.tuples(_ms(0.05, 1), _ms(0.05, 1)).map(
        lambda w: {"split": dict(zip(POOLS, w, strict=True))}
    ),
    st.permutations(POOLS).map(lambda chain: {"chain": list(chain)}),
)
origins = st.one_of(
    st.just("device-1"),
    st.tuples(_ms(0.1, 1), _ms(0.1, 1)).map(
        lambda w: {"device-1": w[0], "device-2": w[1]}
    ),
)


def _link(a: str, b: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda latency, bandwidth: {
            "a": a,
            "b": b,
            "latency_ms": latency,
            "bandwidth_mbps": bandwidth,
        },
        _ms(0, 50),
        _ms(1, 10_000),
    )


@st.composite
def _pools(draw: st.DrawFn, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "servers": draw(st.integers(1, 3)),
        "queue_capacity": draw(queue_capacities),
        "service_time_ms": draw(distributions),
    }


@st.composite
def topologies(draw: st.DrawFn) -> dict[str, Any]:
    """Two devices, an edge site and a cloud, with a pool at each site."""
    links = [
        draw(_link("device-1", "edge")),
        draw(_link("device-2", "edge")),
        draw(_link("edge", "cloud")),
    ]
    if draw(st.booleans()):
        links.append(draw(_link("device-1", "cloud")))
    return {
        "name": "random",
        "nodes": [
            {"name": "device-1", "kind": "device"},
            {"name": "device-2", "kind": "device"},
            {"name": "edge", "kind": "edge_site", "pools": [draw(_pools(POOLS[0]))]},
            {"name": "cloud", "kind": "cloud", "pools": [draw(_pools(POOLS[1]))]},
        ],
        "links": links,
    }


@st.composite
def classes(draw: st.DrawFn, index: int, arrivals: Any) -> dict[str, Any]:
    found = {
        "name": f"class-{index}",
        "origin": draw(origins),
        "arrival": draw(arrivals),
        "placement": draw(placements),
        "request_bytes": draw(sizes),
        "response_bytes": draw(sizes),
    }
    if draw(st.booleans()):
        found["service_time_ms"] = draw(distributions)
    return found


@st.composite
def scenarios(draw: st.DrawFn, *, random_first_class: bool = False) -> Spec:
    """A topology and a scenario of 1 to 3 classes over it.

    With `random_first_class`, every class has Poisson arrivals and the run
    ends after a number of requests (never empty), so the seed certainly
    changes the draws (a fixed arrival at time 0 could otherwise be the only
    request).
    """
    n_classes = draw(st.integers(1, 3))
    first = poisson if random_first_class else st.one_of(poisson, fixed)
    others = poisson if random_first_class else st.one_of(poisson, fixed)
    scenario: dict[str, Any] = {
        "name": "random",
        "seed": draw(st.integers(0, 2**31)),
        "warmup_s": draw(_ms(0, 0.3)),
        "classes": [
            draw(classes(i, first if i == 0 else others)) for i in range(n_classes)
        ],
    }
    if random_first_class or draw(st.booleans()):
        scenario["requests"] = draw(st.integers(1, 300))
    else:
        scenario["duration_s"] = scenario["warmup_s"] + draw(_ms(0.05, 0.5))
    return draw(topologies()), scenario


# --- running --------------------------------------------------------------------------


def _run(write_scenario: Writer, spec: Spec, folder: Path) -> RunResult:
    topology, scenario = spec
    return run(write_scenario(folder, topology, scenario), out_dir=folder / "out")


def _ledger(write_scenario: Writer, spec: Spec) -> tuple[RunResult, pl.DataFrame]:
    with tempfile.TemporaryDirectory() as folder:
        result = _run(write_scenario, spec, Path(folder))
        ledger = result.requests().sort("request_id", "stage").collect()
    return result, ledger


def _pool_sizes(spec: Spec) -> dict[str, tuple[int, int | None]]:
    """Servers and system capacity (servers plus waiting places) of each pool."""
    sizes_by_pool = {}
    for node in spec[0]["nodes"]:
        for pool in node.get("pools", []):
            queue = pool["queue_capacity"]
            limit = None if queue == "unlimited" else pool["servers"] + queue
            sizes_by_pool[pool["name"]] = (pool["servers"], limit)
    return sizes_by_pool


# --- properties -----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(spec=scenarios())
def test_no_request_finishes_before_it_arrives(
    write_scenario: Writer, spec: Spec
) -> None:
    _, ledger = _ledger(write_scenario, spec)
    served = ledger.filter(pl.col("outcome") == "served")
    assert (ledger["pool_arrival_s"] >= ledger["arrival_s"]).all()
    assert (served["queue_wait_s"] >= 0).all()
    assert (served["finish_s"] >= served["arrival_s"]).all()

    final = served.filter(pl.col("final"))
    crossing = final["uplink_s"] + final["downlink_s"] + final["service_s"]
    assert (final["latency_s"] >= crossing - TOLERANCE_S).all()
    gap = (final["latency_s"] - (final["finish_s"] - final["arrival_s"])).abs()
    assert (gap <= TOLERANCE_S).all()

    # In a chain, each visit begins when the previous one ends, plus the hop.
    following = ledger.filter(pl.col("stage") > 0)
    hops = following.join(
        ledger.select(
            "request_id", pl.col("stage") + 1, previous_finish_s=pl.col("finish_s")
        ),
        on=["request_id", "stage"],
    )
    assert hops.height == following.height
    gap = hops["pool_arrival_s"] - hops["previous_finish_s"] - hops["uplink_s"]
    assert (gap.abs() <= TOLERANCE_S).all()


@PROPERTY_SETTINGS
@given(spec=scenarios())
def test_served_plus_dropped_equals_generated(
    write_scenario: Writer, spec: Spec
) -> None:
    result, ledger = _ledger(write_scenario, spec)
    final = ledger.filter(pl.col("final"))
    assert final.height == result.stats.requests
    assert final["request_id"].to_list() == list(range(result.stats.requests))

    # Each request visits stages 0, 1, ... in order and its last row is final.
    stages = ledger.group_by("request_id").agg(
        pl.col("stage").sort(), n=pl.len(), finals=pl.col("final").sum()
    )
    assert (stages["finals"] == 1).all()
    assert all(s == list(range(n)) for s, n in stages.select("stage", "n").rows())
    dropped = ledger.filter(pl.col("outcome") == "dropped")
    assert dropped["final"].all()

    # Only pools with a finite waiting room drop anything.
    finite = [p for p, (_, limit) in _pool_sizes(spec).items() if limit is not None]
    assert dropped["pool"].cast(pl.String).is_in(finite).all()

    overall = result.summary.filter(scope="overall").row(0, named=True)
    measured = final.filter(~pl.col("warmup"))
    assert overall["requests"] == measured.height
    assert overall["served"] + overall["dropped"] == overall["requests"]


@PROPERTY_SETTINGS
@given(spec=scenarios(random_first_class=True))
def test_the_seed_alone_determines_the_ledger(
    write_scenario: Writer, spec: Spec
) -> None:
    topology, scenario = spec
    _, first = _ledger(write_scenario, spec)
    _, again = _ledger(write_scenario, spec)
    assert_frame_equal(first, again)

    reseeded = {**scenario, "seed": scenario["seed"] + 1}
    _, other = _ledger(write_scenario, (topology, reseeded))
    assert not other.equals(first)


def _fcfs_starts(arrival_s: np.ndarray, service_s: np.ndarray, servers: int) -> list:
    """Service starts of a FCFS pool, recomputed with a list of server free times."""
    free_s = [0.0] * servers
    starts = []
    for at_s, length_s in zip(arrival_s, service_s, strict=True):
        free_s.sort()
        start_s = max(at_s, free_s[0])
        free_s[0] = start_s + length_s
        starts.append(start_s)
    return starts


@PROPERTY_SETTINGS
@given(spec=scenarios())
def test_pools_serve_in_fifo_order(write_scenario: Writer, spec: Spec) -> None:
    _, ledger = _ledger(write_scenario, spec)
    served = ledger.filter(pl.col("outcome") == "served").with_columns(
        start_s=pl.col("pool_arrival_s") + pl.col("queue_wait_s")
    )
    for pool, (servers, limit) in _pool_sizes(spec).items():
        # Among equal arrival times any order is first come, first served.
        visits = served.filter(pl.col("pool") == pool).sort("pool_arrival_s", "start_s")
        start_s = visits["start_s"].to_numpy()
        assert (np.diff(start_s) >= -TOLERANCE_S).all(), pool
        end_s = start_s + visits["service_s"].to_numpy()
        if servers == 1:
            assert (start_s[1:] >= end_s[:-1] - TOLERANCE_S).all(), pool

        expected = _fcfs_starts(
            visits["pool_arrival_s"].to_numpy(), visits["service_s"].to_numpy(), servers
        )
        np.testing.assert_allclose(start_s, expected, rtol=0, atol=TOLERANCE_S)

        # No admission ever finds the pool full.
        if limit is not None:
            at_s = visits["pool_arrival_s"].to_numpy()
            # A request ending within rounding of an arrival counts as gone.
            present = (at_s[None, :] <= at_s[:, None]) & (
                end_s[None, :] > at_s[:, None] + TOLERANCE_S
            )
            assert (present.sum(axis=1) <= limit).all(), pool


@PROPERTY_SETTINGS
@given(spec=scenarios())
def test_warmup_flag_marks_arrivals_before_warmup(
    write_scenario: Writer, spec: Spec
) -> None:
    _, ledger = _ledger(write_scenario, spec)
    warmup_s = spec[1]["warmup_s"]
    assert ledger["warmup"].to_list() == (ledger["arrival_s"] < warmup_s).to_list()
