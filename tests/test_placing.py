"""Policies at work in the engine: plans, decisions, data movement, billing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from sim.api import run
from sim.errors import InputError
from sim.schema import load_scenario

# users - edge (5 ms) - region (10 ms) - cloud (20 ms); 1 Gbit/s everywhere.
TOPOLOGY: dict[str, Any] = {
    "name": "ladder",
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
                    "cost": {"instance": "aws-g6.xlarge"},
                }
            ],
        },
        {
            "name": "region",
            "kind": "region",
            "pools": [
                {
                    "name": "region-pool",
                    "servers": 2,
                    "service_time_ms": {"distribution": "deterministic", "value": 10},
                    "cost": {"instance": "aws-g6.xlarge"},
                }
            ],
        },
        {
            "name": "cloud",
            "kind": "cloud",
            "pools": [
                {
                    "name": "cloud-pool",
                    "servers": 4,
                    "service_time_ms": {"distribution": "deterministic", "value": 10},
                    "cost": {"instance": "aws-g6.xlarge"},
                }
            ],
        },
    ],
    "links": [
        {"a": "users", "b": "edge", "latency_ms": 5, "bandwidth_mbps": 1000},
        {"a": "edge", "b": "region", "latency_ms": 10, "bandwidth_mbps": 1000},
        {
            "a": "region",
            "b": "cloud",
            "latency_ms": 20,
            "bandwidth_mbps": 1000,
            "price": "gcp-inter-region-na",
        },
    ],
}


def scenario(placement: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "placing",
        "topology": "topology.yaml",
        "seed": 5,
        "duration_s": 50,
        "classes": [
            {
                "name": "work",
                "origin": "users",
                "arrival": {"process": "poisson", "rate_per_s": 40},
                "placement": placement,
            }
        ],
        **extra,
    }


def simulate(folder: Path, spec: dict[str, Any]) -> Any:
    (folder / "topology.yaml").write_text(yaml.safe_dump(TOPOLOGY))
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(spec))
    return run(path, out_dir=folder / "out")


def rows(result: Any) -> pl.DataFrame:
    return result.requests().collect()


@pytest.mark.parametrize(
    ("policy", "pool"),
    [("edge", "edge-pool"), ("regional", "region-pool"), ("cloud", "cloud-pool")],
)
def test_tier_policies_send_everything_to_their_tier(
    tmp_path: Path, policy: str, pool: str
) -> None:
    result = simulate(tmp_path, scenario({"policy": policy}))
    assert rows(result)["pool"].cast(pl.String).unique().to_list() == [pool]
    # Only the pool the placement uses is paid for.
    compute = result.costs.lines.filter(pl.col("category") == "compute")
    assert compute["resource"].to_list() == [pool]


def test_cascade_escalates_its_share_and_pays_for_both(tmp_path: Path) -> None:
    result = simulate(tmp_path, scenario({"policy": "cascade", "escalate_share": 0.3}))
    ledger = rows(result)
    finals = ledger.filter(pl.col("final"))
    escalated = ledger.filter(pl.col("stage") == 1).height / finals.height
    # Binomial 99 % interval around 0.3 for about 2,000 requests.
    half_width = 2.576 * math.sqrt(0.3 * 0.7 / finals.height)
    assert abs(escalated - 0.3) < half_width
    assert set(ledger.filter(pl.col("stage") == 1)["pool"].cast(pl.String)) == {
        "cloud-pool"
    }
    compute = result.costs.lines.filter(pl.col("category") == "compute")
    assert sorted(compute["resource"].to_list()) == ["cloud-pool", "edge-pool"]


def test_data_locality_runs_at_the_data_or_moves_it(tmp_path: Path) -> None:
    options = {
        "policy": "data_locality",
        "data_node": "region",
        "data_bytes": 5_000_000,
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stays = simulate(tmp_path / "a", scenario(options))
    moves = simulate(
        tmp_path / "b", scenario({**options, "move_data": True, "tier": "cloud"})
    )

    assert rows(stays)["pool"].cast(pl.String).unique().to_list() == ["region-pool"]
    moved = rows(moves)
    assert moved["pool"].cast(pl.String).unique().to_list() == ["cloud-pool"]
    # Uplink: users->cloud (35 ms) plus the data set region->cloud:
    # 20 ms + 5e6 bytes x 8 / 1e9 bit/s = 60 ms.
    assert moved["uplink_s"].to_list() == pytest.approx([0.035 + 0.060] * moved.height)
    transfer = moves.costs.lines.filter(pl.col("category") == "transfer")
    # gcp-inter-region-na bills GiB: the data sets alone cross the priced link.
    assert transfer["quantity"].sum() == pytest.approx(moved.height * 5e6 / 2**30)


def test_hybrid_spills_when_the_edge_queue_passes_its_threshold(tmp_path: Path) -> None:
    # 40 requests/s on a 10 ms server: often busy, so some requests spill.
    result = simulate(tmp_path, scenario({"policy": "hybrid", "spill_queue": 1}))
    per_pool = dict(
        rows(result).group_by(pl.col("pool").cast(pl.String)).len().iter_rows()
    )
    assert per_pool["edge-pool"] > per_pool.get("region-pool", 0) > 0
    # A decision event per request, then the pool visit.
    assert result.stats.events >= 2 * result.stats.requests


def test_latency_aware_prefers_the_fastest_completion(tmp_path: Path) -> None:
    result = simulate(tmp_path, scenario({"policy": "latency_aware"}))
    per_pool = dict(
        rows(result).group_by(pl.col("pool").cast(pl.String)).len().iter_rows()
    )
    assert max(per_pool, key=per_pool.get) == "edge-pool"


def test_a_policy_option_of_another_policy_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(TOPOLOGY))
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario({"policy": "cloud", "spill_queue": 2})))
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert problem.field == "classes[0].placement.spill_queue"
    assert problem.expected == "an option of policy 'cloud' (none)"


def test_an_unknown_policy_suggests_the_closest(tmp_path: Path) -> None:
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(TOPOLOGY))
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario({"policy": "latency-aware"})))
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert problem.field == "classes[0].placement.policy"
    assert problem.suggestion == "latency_aware"


def test_hybrid_spills_past_a_pool_that_is_down(tmp_path: Path) -> None:
    topology = yaml.safe_load(yaml.safe_dump(TOPOLOGY))
    topology["nodes"][1]["pools"][0]["outages"] = [{"start_s": 10, "end_s": 20}]
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(topology))
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario({"policy": "hybrid", "spill_queue": 50})))
    ledger = run(path, out_dir=tmp_path / "out").requests().collect()

    during = ledger.filter(pl.col("arrival_s").is_between(10.5, 19.5))
    before = ledger.filter(pl.col("arrival_s") < 9.5)
    assert during["pool"].cast(pl.String).unique().to_list() == ["region-pool"]
    assert before["pool"].cast(pl.String).unique().to_list() == ["edge-pool"]
    # Only requests already on their way when the outage began are lost.
    dropped = ledger.filter(pl.col("outcome") == "dropped")
    assert (dropped["arrival_s"] < 10).all()
    assert (dropped["pool_arrival_s"] >= 10).all()


def test_edge_only_drops_what_arrives_while_its_pool_is_down(tmp_path: Path) -> None:
    topology = yaml.safe_load(yaml.safe_dump(TOPOLOGY))
    topology["nodes"][1]["pools"][0]["outages"] = [{"start_s": 10, "end_s": 20}]
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(topology))
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario({"policy": "edge"})))
    ledger = run(path, out_dir=tmp_path / "out").requests().collect()

    # The pool sees a request 5 ms after it leaves: that is when it is judged.
    arrives = pl.col("pool_arrival_s")
    dropped = ledger.filter(pl.col("outcome") == "dropped")
    assert dropped.height == ledger.filter(arrives.is_between(10, 20, "left")).height
    assert dropped["pool_arrival_s"].min() >= 10
    assert dropped["pool_arrival_s"].max() < 20
