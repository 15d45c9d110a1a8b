"""`placesim compare`: placements side by side on common random numbers.

The engine tests live in test_placing.py; these check what comparing adds:
equal placements give equal tables, degenerate placements equal the simple
ones they reduce to, the Pareto marks, the command line, and the winners each
shipped comparison scenario claims in its comments (on shortened runs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result
from polars.testing import assert_frame_equal

import sim.compare
from cli import main
from sim.compare import COMPARISON_FILE, Comparison, compare, pareto_front
from sim.errors import PlacesimError
from sim.schema import LoadedScenario, load_scenario, with_overrides

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Where and how each request was served, per pool visit (its class, origin and
# tokens come from streams no placement changes).
VISIT_COLUMNS = [
    "request_id",
    "stage",
    "pool",
    "arrival_s",
    "uplink_s",
    "pool_arrival_s",
    "queue_wait_s",
    "service_s",
    "downlink_s",
    "finish_s",
    "latency_s",
    "request_bytes",
    "response_bytes",
    "outcome",
    "final",
]


def _pool(name: str, servers: int, mean_ms: float) -> dict[str, Any]:
    return {
        "name": name,
        "servers": servers,
        "service_time_ms": {"distribution": "lognormal", "mean": mean_ms, "cv": 0.5},
        "cost": {"instance": "aws-g6.xlarge"},
    }


def line_topology(*, edge_pool: bool = True) -> dict[str, Any]:
    """users - edge (5 ms) - region (10 ms) - cloud (20 ms, priced)."""
    edge = {"name": "edge", "kind": "edge_site"}
    if edge_pool:
        edge["pools"] = [_pool("edge-pool", 1, 10)]
    return {
        "name": "line",
        "nodes": [
            {"name": "users", "kind": "device"},
            edge,
            {"name": "region", "kind": "region"},
            {"name": "cloud", "kind": "cloud", "pools": [_pool("cloud-pool", 4, 20)]},
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


def line_scenario(
    arrival: dict[str, Any], placements: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": "line",
        "seed": 17,
        "duration_s": 30,
        "warmup_s": 1,
        "slo_ms": 60,
        "placements": placements,
        "classes": [
            {
                "name": "work",
                "origin": "users",
                "arrival": arrival,
                "request_bytes": {"distribution": "lognormal", "mean": 5e4, "cv": 1},
                "response_bytes": 2000,
                "placement": {"policy": "cloud"},
            }
        ],
        **extra,
    }


POISSON = {"process": "poisson", "rate_per_s": 40}
EDGE_AND_CLOUD = {"edge": {"policy": "edge"}, "cloud": {"policy": "cloud"}}


def visits(comparison: Comparison, placement: str) -> pl.DataFrame:
    (result,) = comparison.runs[placement]
    ledger = result.requests().select(VISIT_COLUMNS).collect()
    return ledger.with_columns(pl.col("pool", "outcome").cast(pl.String)).sort(
        "request_id", "stage"
    )


def row(comparison: Comparison, placement: str) -> pl.DataFrame:
    """A placement's row of the table without its name."""
    table = comparison.table.filter(pl.col("placement") == placement)
    return table.drop("placement")


# --- placements that reduce to one another ---------------------------------------


def test_hybrid_at_near_zero_load_serves_like_edge_only(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    # One request a second on a 10 ms server: the edge pool is always free, so
    # hybrid never spills, even with its most eager threshold.
    path = write_scenario(
        tmp_path,
        line_topology(),
        line_scenario(
            {"process": "fixed", "interval_ms": 1000},
            {"edge": {"policy": "edge"}, "hybrid": {"policy": "hybrid"}},
        ),
    )
    comparison = compare(path, ["edge", "hybrid"], out_dir=tmp_path / "out")

    edge, hybrid = visits(comparison, "edge"), visits(comparison, "hybrid")
    assert edge["pool"].unique().to_list() == ["edge-pool"]
    assert edge.height == 30
    assert_frame_equal(hybrid, edge)
    latency = ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "slo_attainment"]
    assert_frame_equal(
        row(comparison, "hybrid").select(latency),
        row(comparison, "edge").select(latency),
    )


def test_hybrid_without_edge_pools_serves_like_cloud_only(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    path = write_scenario(
        tmp_path,
        line_topology(edge_pool=False),
        line_scenario(POISSON, {"hybrid": {"policy": "hybrid", "spill_queue": 0}}),
    )
    comparison = compare(path, ["cloud", "hybrid"], out_dir=tmp_path / "out")

    cloud, hybrid = visits(comparison, "cloud"), visits(comparison, "hybrid")
    assert cloud["pool"].unique().to_list() == ["cloud-pool"]
    assert_frame_equal(hybrid, cloud)
    # The cloud pool is the only one either can use, so the bills agree too.
    assert_frame_equal(row(comparison, "hybrid"), row(comparison, "cloud"))


@pytest.mark.parametrize(
    "placement",
    [{"policy": "cloud"}, {"policy": "hybrid", "spill_queue": 1}],
    ids=["static", "dynamic"],
)
def test_identical_placements_give_identical_tables(
    tmp_path: Path, write_scenario: Callable[..., Path], placement: dict[str, Any]
) -> None:
    path = write_scenario(
        tmp_path,
        line_topology(),
        line_scenario(POISSON, {"first": placement, "second": dict(placement)}),
    )
    comparison = compare(path, ["first", "second"], out_dir=tmp_path / "out")

    assert_frame_equal(visits(comparison, "second"), visits(comparison, "first"))
    assert_frame_equal(row(comparison, "second"), row(comparison, "first"))


# Known shortcomings of the engine, pinned until they are fixed: strict, so a
# fix turns them into failures that ask for the mark to go.


def test_hybrid_is_billed_only_for_the_tiers_it_may_use(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    path = write_scenario(
        tmp_path,
        line_topology(),
        line_scenario(
            POISSON,
            {
                "edge": {"policy": "edge"},
                "hybrid": {"policy": "hybrid", "tiers": ["edge_site"]},
            },
        ),
    )
    comparison = compare(path, ["edge", "hybrid"], out_dir=tmp_path / "out")

    assert visits(comparison, "hybrid")["pool"].unique().to_list() == ["edge-pool"]
    assert row(comparison, "hybrid")["monthly_compute_usd"].item() == (
        row(comparison, "edge")["monthly_compute_usd"].item()
    )


def test_hybrid_spills_past_a_busy_serving_pool(
    tmp_path: Path, write_scenario: Callable[..., Path]
) -> None:
    topology = line_topology()
    jetson = {"model": "llama-3.1-8b", "hardware": "jetson-agx-orin-64gb"}
    h100 = {"model": "llama-3.1-8b", "hardware": "h100-sxm-80gb"}
    for node, serving in ((topology["nodes"][1], jetson), (topology["nodes"][3], h100)):
        (pool,) = node["pools"]
        del pool["service_time_ms"]
        pool.update(serving=serving, queue_capacity=20)
    scenario = line_scenario(POISSON, {"hybrid": {"policy": "hybrid"}})
    # 40 prompts of 1,000 tokens a second: 80 s of Jetson prefill each second.
    scenario["classes"][0].update(input_tokens=1000, output_tokens=20)
    scenario["duration_s"] = 5
    path = write_scenario(tmp_path, topology, scenario)
    comparison = compare(path, ["hybrid"], out_dir=tmp_path / "out")

    assert "cloud-pool" in visits(comparison, "hybrid")["pool"].to_list()


# --- the Pareto front ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "latency", "front"),
    [
        # a staircase: each point is cheaper or faster than every other
        ([1.0, 2.0, 3.0], [30.0, 20.0, 10.0], [True, True, True]),
        # (2, 25) is beaten by (2, 20) on latency at equal cost
        ([1.0, 2.0, 2.0, 3.0], [30.0, 20.0, 25.0, 10.0], [True, True, False, True]),
        # (3, 30) is beaten on both by (2, 20)
        ([2.0, 3.0], [20.0, 30.0], [True, False]),
        # identical points do not dominate each other
        ([1.0, 1.0, 2.0], [10.0, 10.0, 20.0], [True, True, False]),
        # equal latency: only the cheaper one is on the front
        ([1.0, 2.0], [10.0, 10.0], [True, False]),
        # a point with a missing figure is never on the front, nor beats one
        ([1.0, None, 3.0], [None, 5.0, 10.0], [False, False, True]),
        ([], [], []),
    ],
)
def test_pareto_front_marks_the_undominated_points(
    cost: list[float | None], latency: list[float | None], front: list[bool]
) -> None:
    assert pareto_front(cost, latency) == front


# --- the command line ------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="placesim")


@pytest.fixture
def line_path(tmp_path: Path, write_scenario: Callable[..., Path]) -> Path:
    return write_scenario(
        tmp_path / "scenario", line_topology(), line_scenario(POISSON, EDGE_AND_CLOUD)
    )


def test_cli_prints_the_table_and_writes_the_comparison_and_plot(
    tmp_path: Path, line_path: Path
) -> None:
    out, plot = tmp_path / "out", tmp_path / "compare.png"
    result = invoke(
        "compare", str(line_path), "--placements", "edge,cloud",
        "--out", str(out), "--plot", str(plot), "--quiet",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"compare: scenario={line_path} placements=edge,cloud replications=1"
    )
    header = lines[1].split()
    assert header == [
        "placement", "p50_ms", "p95_ms", "p99_ms", "slo_%", "dropped_%",
        "usd_per_1k_req", "monthly_usd", "compute_usd", "transfer_usd", "pareto",
    ]  # fmt: skip
    starred = {}
    for line in lines[3:5]:
        cells = dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False))
        starred[cells["placement"]] = [c for c, v in cells.items() if v.endswith("*")]
    # The edge pool is 30 ms nearer and its link is free: best everywhere.
    # Neither drops a request, so both share that star.
    assert starred == {"edge": header[1:8], "cloud": ["dropped_%"]}
    assert lines[3].endswith("yes")
    assert not lines[4].endswith("yes")
    assert lines[-2] == "* best in its column; monthly figures are projections"
    assert lines[-1] == f"wrote: {out / COMPARISON_FILE}, {plot}"

    table = pl.read_parquet(out / COMPARISON_FILE)
    assert table["placement"].to_list() == ["edge", "cloud"]
    assert table["pareto"].to_list() == [True, False]
    # One replication: no interval to give.
    assert table["latency_p95_ms_ci95"].null_count() == table.height
    assert "±" not in result.output
    assert (out / "edge" / "seed17" / "requests.parquet").is_file()

    data = plot.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 20_000
    import matplotlib.image

    # 12 x 4.8 inches at 120 dpi, RGBA
    assert matplotlib.image.imread(plot).shape == (576, 1440, 4)


def test_cli_names_the_closest_placement_for_an_unknown_one(
    tmp_path: Path, line_path: Path
) -> None:
    result = invoke(
        "compare", str(line_path), "--placements", "edge,clod",
        "--out", str(tmp_path / "out"), "--quiet",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "got 'clod'. Did you mean 'cloud'?" in result.output
    assert "Try 'placesim compare --help' for help." in result.output
    # Nothing ran: the names are checked before the first run.
    assert not (tmp_path / "out").exists()


def test_cli_replications_add_confidence_intervals(
    tmp_path: Path, line_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke(
        "compare", str(line_path), "--placements", "edge,cloud",
        "--replications", "2", "--out", str(out), "--quiet",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out / COMPARISON_FILE)
    assert table["replications"].to_list() == [2, 2]
    for metric in sim.compare.METRICS:
        assert f"{metric}_ci95" in table.columns
    assert table["latency_p95_ms_ci95"].null_count() == 0
    assert "±" in result.output
    assert (out / "cloud" / "seed18").is_dir()


# --- the shipped comparison scenarios --------------------------------------------
# Each runs a shortened version of its comparison and checks the winners its
# comments claim.


def shortened(
    monkeypatch: pytest.MonkeyPatch, duration_s: float
) -> Callable[[str], LoadedScenario]:
    """Make `compare` load scenarios with their duration cut to `duration_s`."""

    def load(path: str) -> LoadedScenario:
        return with_overrides(load_scenario(path), duration_s=duration_s)

    monkeypatch.setattr(sim.compare, "load_scenario", load)
    return load


def compare_shipped(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    duration_s: float,
) -> dict[str, dict[str, Any]]:
    shortened(monkeypatch, duration_s)
    path = SCENARIOS / f"{name}.yaml"
    placements = list(load_scenario(path).scenario.placements)
    table = compare(path, placements, out_dir=tmp_path).table
    return {r["placement"]: r for r in table.iter_rows(named=True)}


def best(rows: dict[str, dict[str, Any]], metric: str, *, lower: bool = True) -> str:
    pick = min if lower else max
    return pick(rows, key=lambda name: rows[name][metric])


def test_store_chat_edge_is_fastest_and_hybrid_cheapest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = compare_shipped(monkeypatch, tmp_path, "store_chat", 200)

    assert list(rows) == ["edge", "hybrid", "cloud"]
    assert best(rows, "latency_p95_ms") == "edge"
    assert best(rows, "monthly_usd") == "hybrid"
    assert best(rows, "usd_per_1k_requests") == "hybrid"
    # Each design pays for its own hardware only.
    assert rows["edge"]["monthly_compute_usd"] == 0
    assert rows["cloud"]["monthly_edge_hardware_usd"] == 0
    assert rows["hybrid"]["monthly_compute_usd"] < rows["cloud"]["monthly_compute_usd"]


def test_video_analytics_edge_ships_no_frames(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = compare_shipped(monkeypatch, tmp_path, "video_analytics", 30)

    transfer = {name: r["monthly_transfer_usd"] for name, r in rows.items()}
    assert transfer["edge"] == 0
    # A twentieth of the frames against all of them.
    assert 0 < transfer["hybrid"] < transfer["cloud"] / 10
    assert transfer["cloud"] > rows["cloud"]["monthly_compute_usd"]
    assert best(rows, "monthly_usd") == "edge"
    assert best(rows, "latency_p95_ms") == "edge"


def test_code_assistant_cannot_run_at_the_edge_and_cloud_is_fastest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = compare_shipped(monkeypatch, tmp_path / "all", "code_assistant", 600)

    assert best(rows, "latency_p95_ms") == "cloud"
    assert best(rows, "slo_attainment", lower=False) == "cloud"
    assert best(rows, "monthly_usd") == "regional"
    # Hybrid finds no edge pool that holds the model and falls back to the cloud.
    for metric in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        assert rows["hybrid"][metric] == rows["cloud"][metric]

    with pytest.raises(PlacesimError, match="no pool at an edge_site"):
        compare(SCENARIOS / "code_assistant.yaml", ["edge"], out_dir=tmp_path / "e")


def test_regulated_data_runs_best_next_to_its_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = compare_shipped(monkeypatch, tmp_path, "regulated_data", 120)

    at_data, moved = rows["at_data"], rows["move_to_cloud"]
    assert at_data["monthly_transfer_usd"] == 0
    assert moved["monthly_transfer_usd"] > moved["monthly_compute_usd"]
    assert at_data["monthly_compute_usd"] == moved["monthly_compute_usd"]
    assert best(rows, "latency_p95_ms") == "at_data"
    assert best(rows, "monthly_usd") == "at_data"
