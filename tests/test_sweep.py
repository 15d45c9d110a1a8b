"""Sweeps: expansion, located errors, seeds, resume, failures, summaries, Ray.

Most runs use tests/data/sweep_tiny.yaml: 6 points of tests/data/tiny.yaml
times 2 replications, each run 5 simulated seconds. Tests marked `ray` run on
a real Ray: one runtime started in this process and shared by the module, a
`placesim sweep` child process that starts its own embedded Ray, and a Ray
head started with `ray start --head` on a free local port. Every run's rows
are compared with the same sweep run in this process without Ray.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from click.testing import CliRunner, Result
from polars.testing import assert_frame_equal

import cli
from cli import main
from sim.api import run
from sim.errors import InputError, PlacesimError
from sim.schema import with_overrides
from sim.summary import SUMMARY_COLUMNS
from sim.sweep import (
    is_sweep_file,
    load_sweep,
    read_failures,
    read_results,
    run_sweep,
)
from sim.sweep.dataset import Layout, run_rows, write_run
from sim.sweep.point import load_point
from sim.sweep.spec import read_sweep
from sim.sweep.stats import pareto_front, summarize_sweep, t_critical

DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "tiny.yaml"
SWEEP = DATA / "sweep_tiny.yaml"
RUNS = 12
ROOT = Path(__file__).resolve().parent.parent
SWEEP_HINT = "Try 'placesim sweep --help' for help."


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="placesim")


def write_sweep(folder: Path, body: dict[str, Any], name: str = "sweep.yaml") -> Path:
    """Write a sweep of tests/data/tiny.yaml with `body` as its other keys."""
    path = folder / name
    path.write_text(yaml.safe_dump({"scenario": str(TINY), **body}, sort_keys=False))
    return path


# --- expansion ---------------------------------------------------------------------


def test_grid_points_are_every_combination_with_the_last_key_fastest() -> None:
    sweep = read_sweep(SWEEP)

    values = [point.values for point in sweep.points]

    assert values == [(50, 4), (50, 16), (100, 4), (100, 16), (150, 4), (150, 16)]
    assert [point.index for point in sweep.points] == list(range(6))
    assert [p.name for p in sweep.parameters] == [
        "classes[detect].arrival.rate_per_s",
        "topology.nodes[cloud].pools[cloud-gpu].servers",
    ]


def test_zip_rows_cross_the_grid_then_random_samples_vary_fastest(
    tmp_path: Path,
) -> None:
    path = write_sweep(
        tmp_path,
        {
            "grid": {"seed": [1, 2]},
            "zip": {"classes[chat].slo_ms": [100, 200], "warmup_s": [0.5, 2]},
            "random": {"samples": 3, "parameters": {"requests": {"integers": [5, 9]}}},
        },
    )

    sweep = read_sweep(path)

    grid_and_zip = [point.values[:3] for point in sweep.points]
    assert grid_and_zip == [
        (1, 100, 0.5),
        (1, 100, 0.5),
        (1, 100, 0.5),
        (1, 200, 2),
        (1, 200, 2),
        (1, 200, 2),
        (2, 100, 0.5),
        (2, 100, 0.5),
        (2, 100, 0.5),
        (2, 200, 2),
        (2, 200, 2),
        (2, 200, 2),
    ]
    drawn = [point.values[3] for point in sweep.points]
    # The same three samples meet every grid and zip row.
    assert drawn[:3] * 4 == drawn


def test_random_draws_repeat_with_the_seed_and_stay_within_their_bounds(
    tmp_path: Path,
) -> None:
    draws = {
        "classes[chat].arrival.rate_per_s": {"uniform": [20, 60]},
        "classes[detect].arrival.rate_per_s": {"loguniform": [10, 1000]},
        "requests": {"integers": [5, 7]},
        "classes[chat].placement.split[cloud-gpu]": {"choice": [0.5, 1, 3]},
    }

    def drawn(seed: int) -> list[tuple[Any, ...]]:
        body = {"seed": seed, "random": {"samples": 200, "parameters": draws}}
        path = write_sweep(tmp_path, body, name=f"seed{seed}.yaml")
        return [point.values for point in read_sweep(path).points]

    first, again, other = drawn(1), drawn(1), drawn(2)

    assert first == again
    assert first != other
    rates, detect, requests, weights = zip(*first, strict=True)
    assert all(20 <= r < 60 for r in rates)
    assert all(10 <= r < 1000 for r in detect)
    assert sum(r < 100 for r in detect) == pytest.approx(100, abs=25)
    assert set(requests) == {5, 6, 7}
    assert set(weights) == {0.5, 1, 3}


def test_paths_pick_items_by_name_or_index_and_reach_the_topology(
    tmp_path: Path,
) -> None:
    path = write_sweep(
        tmp_path,
        {
            "set": {
                "classes[1].slo_ms": 80,
                "classes[detect].arrival": {"process": "poisson", "rate_per_s": 20},
                "classes[chat].placement.split[cloud-gpu]": 3,
                "topology.nodes[edge].pools[0].queue_capacity": 2,
                "topology.links[1].latency_ms": 30,
                "requests": 500,
                "duration_s": None,
            }
        },
    )

    sweep = read_sweep(path)
    loaded = load_point(sweep.base, sweep.assignments(sweep.points[0]))

    assert [(p.target, p.path) for p, _ in sweep.fixed] == [
        ("scenario", ("classes", 1, "slo_ms")),
        ("scenario", ("classes", 0, "arrival")),
        ("scenario", ("classes", 1, "placement", "split", "cloud-gpu")),
        ("topology", ("nodes", 1, "pools", 0, "queue_capacity")),
        ("topology", ("links", 1, "latency_ms")),
        ("scenario", ("requests",)),
        ("scenario", ("duration_s",)),
    ]
    chat = loaded.scenario.classes[1]
    assert chat.slo_ms == 80
    assert chat.placement.split == {"region-gpu": 1, "cloud-gpu": 3}
    assert loaded.scenario.classes[0].arrival.rate_per_s == 20
    assert loaded.topology.nodes[1].pools[0].queue_capacity == 2
    assert loaded.topology.links[1].latency_ms == 30
    assert (loaded.scenario.requests, loaded.scenario.duration_s) == (500, None)
    # Files still resolve from the base scenario's folder.
    assert loaded.scenario_path == TINY
    assert loaded.topology_path == DATA / "tiny_topology.yaml"


def test_a_sweep_file_is_told_apart_from_scenarios_and_topologies() -> None:
    assert is_sweep_file(ROOT / "scenarios" / "sweep_three_tier.yaml")
    assert is_sweep_file(SWEEP)
    assert not is_sweep_file(TINY)
    assert not is_sweep_file(DATA / "tiny_topology.yaml")
    assert not is_sweep_file(DATA / "bad_syntax.yaml")


# --- located errors ----------------------------------------------------------------

BAD_PATHS = """\
scenario: {tiny}
grid:
  classes[chta].arrival.rate_per_s: [1, 2]
  topology.nodes[cloud].pools[cloud-gpus].servers: [4]
  classes[detect].arival.rate_per_s: [5]
zip:
  classes[7].slo_ms: [1]
  classes.arrival: [1]
  seed.value: [1]
"""


def test_bad_paths_are_all_reported_at_their_key_with_the_closest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(BAD_PATHS.format(tiny=TINY))

    result = invoke("sweep", "bad.yaml", "--serial")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: bad.yaml: 6 problems",
        "  bad.yaml:3:3: grid.classes[chta].arrival.rate_per_s: expected the name "
        "of an item of classes (detect, chat); got 'chta'. Did you mean 'chat'?",
        "  bad.yaml:4:3: grid.topology.nodes[cloud].pools[cloud-gpus].servers: "
        "expected the name of an item of topology.nodes[cloud].pools (cloud-gpu); "
        "got 'cloud-gpus'. Did you mean 'cloud-gpu'?",
        "  bad.yaml:5:3: grid.classes[detect].arival.rate_per_s: expected a key of "
        "classes[detect] (arrival, name, origin, placement, request_bytes, "
        "response_bytes); got 'arival'. Did you mean 'arrival'?",
        "  bad.yaml:7:3: zip.classes[7].slo_ms: expected an index below 2 in "
        "classes; got 7",
        "  bad.yaml:8:3: zip.classes.arrival: expected [name] or [index] to pick an "
        "item of the list classes; got .arrival",
        "  bad.yaml:9:3: zip.seed.value: expected a mapping or a list at seed to "
        "look up 'value' in; got 3",
        SWEEP_HINT,
    ]
    assert not Path("out").exists()


def test_zip_lists_of_different_lengths_are_reported(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path,
        {"zip": {"seed": [1, 2, 3], "warmup_s": [1, 2], "classes[chat].slo_ms": [9]}},
    )

    with pytest.raises(InputError) as caught:
        read_sweep(path)

    assert [str(p).split(": ", 1)[1] for p in caught.value.problems] == [
        "zip.warmup_s: expected 3 values, as many as seed; got 2",
        "zip.classes[chat].slo_ms: expected 3 values, as many as seed; got 1",
    ]


def test_a_mistake_every_point_shares_is_reported_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_sweep(
        tmp_path,
        {
            "set": {"duration_s": -1, "classes[chat].arrival.rate_per_sec": 2},
            "grid": {"classes[detect].placement.pool": ["edge-gpu", "cloud-gpu"]},
        },
    )

    result = invoke("sweep", "sweep.yaml")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: sweep.yaml: 2 problems",
        "  sweep.yaml:3:15: set.duration_s: expected a number > 0; got -1 (point 0)",
        "  sweep.yaml:4:39: set.classes[chat].arrival.rate_per_sec: expected one of "
        "the keys process, rate_per_s; got 'rate_per_sec' (point 0). "
        "Did you mean 'rate_per_s'?",
        SWEEP_HINT,
    ]
    assert not (tmp_path / "out").exists()


def test_a_sweep_file_that_is_not_a_sweep_is_located_like_any_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"scenario: {TINY}\nreplication: 3\nrandom: {{samples: 0}}\n")

    with pytest.raises(InputError) as caught:
        read_sweep(path)

    assert str(caught.value).splitlines()[1:] == [
        f"  {path}:2:1: replication: expected one of the keys name, description, "
        "scenario, replications, seed, set, grid, zip, random; got 'replication'. "
        "Did you mean 'replications'?",
        f"  {path}:3:9: random: expected required key 'parameters'; got nothing",
        f"  {path}:3:19: random.samples: expected an integer > 0; got 0",
    ]


# --- seeds and rows (in this process) ----------------------------------------------


@pytest.fixture(scope="module")
def serial_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test sweep run in this process, one run after another, without Ray."""
    out = tmp_path_factory.mktemp("serial") / "out"
    result = run_sweep(SWEEP, out, serial=True)
    assert (result.completed, result.failures) == (RUNS, ())
    return out


@pytest.fixture(scope="module")
def serial_rows(serial_out: Path) -> pl.DataFrame:
    return read_results(serial_out)


def test_rows_are_summary_rows_with_point_replication_seed_and_values(
    serial_rows: pl.DataFrame,
) -> None:
    head = [
        "point",
        "replication",
        "seed",
        "param:classes[detect].arrival.rate_per_s",
        "param:topology.nodes[cloud].pools[cloud-gpu].servers",
    ]

    assert serial_rows.columns == [*head, *SUMMARY_COLUMNS]
    keys = serial_rows.filter(pl.col("scope") == "overall").select(head).rows()
    assert keys == [
        (point, replication, 3 + replication, rate, servers)
        for point, (rate, servers) in enumerate(
            [(50, 4), (50, 16), (100, 4), (100, 16), (150, 4), (150, 16)]
        )
        for replication in range(2)
    ]


def test_replication_r_of_a_point_is_a_plain_run_with_seed_plus_r(
    serial_rows: pl.DataFrame,
) -> None:
    sweep = load_sweep(SWEEP)
    loaded = load_point(sweep.base, sweep.assignments(sweep.points[3]))
    expected = run(with_overrides(loaded, seed=3 + 1)).summary

    rows = serial_rows.filter(pl.col("point") == 3, pl.col("replication") == 1)

    assert_frame_equal(rows.select(list(SUMMARY_COLUMNS)), expected)


# --- the output folder ---------------------------------------------------------------


def test_an_out_folder_with_results_needs_resume(tmp_path: Path) -> None:
    run_sweep(SWEEP, tmp_path, serial=True, limit=1)

    with pytest.raises(PlacesimError, match="already holds results of this sweep"):
        run_sweep(SWEEP, tmp_path, serial=True)


def test_an_out_folder_of_another_sweep_is_refused(tmp_path: Path) -> None:
    run_sweep(SWEEP, tmp_path / "out", serial=True, limit=1)
    other = write_sweep(tmp_path, {"set": {"duration_s": 5}, "grid": {"seed": [1]}})

    with pytest.raises(PlacesimError, match="holds the results of another sweep"):
        run_sweep(other, tmp_path / "out", serial=True, resume=True)


def test_a_run_file_is_written_under_a_temporary_name_then_renamed(
    tmp_path: Path,
) -> None:
    run_sweep(SWEEP, tmp_path, serial=True, limit=2)
    # A run killed while writing leaves a temporary file; readers skip it.
    stray = Layout(tmp_path, 6).point_dir(0) / ".replication-0001.parquet.x.tmp"
    stray.write_bytes(b"PAR1 half a file")

    assert Layout(tmp_path, 6).done() == {(0, 0), (0, 1)}
    assert read_results(tmp_path)["replication"].unique().to_list() == [0, 1]


def test_keep_ledgers_keeps_each_runs_ledger_beside_the_results(
    tmp_path: Path,
) -> None:
    run_sweep(SWEEP, tmp_path / "kept", serial=True, limit=2, keep_ledgers=True)
    run_sweep(SWEEP, tmp_path / "dropped", serial=True, limit=2)

    kept = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("*/ledgers/*/*/*"))
    assert [str(p) for p in kept if p.name == "requests.parquet"] == [
        "kept/ledgers/point=0000/replication-0000/requests.parquet",
        "kept/ledgers/point=0000/replication-0001/requests.parquet",
    ]
    assert not (tmp_path / "dropped" / "ledgers").exists()


def test_an_address_nobody_answers_at_is_a_short_error(tmp_path: Path) -> None:
    port = _free_port()

    result = CliRunner(env={"RAY_ADDRESS": f"127.0.0.1:{port}"}).invoke(
        main, ["sweep", str(SWEEP), "--out", str(tmp_path)], prog_name="placesim"
    )

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no Ray cluster answers at 127.0.0.1:{port} (connection refused); "
        f"start one with `ray start --head --port {port}` or check --address\n"
    )


def test_serial_with_an_address_is_a_usage_error() -> None:
    result = invoke("sweep", str(SWEEP), "--serial", "--address", "auto")

    assert result.exit_code == 2
    assert "--serial runs without Ray: drop --address and --num-cpus" in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("flags", "drawn"), [((), True), (("--quiet",), False)])
def test_a_terminal_gets_a_bar_of_runs_unless_quiet(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    drawn: bool,
) -> None:
    screen = _Terminal()
    monkeypatch.setattr(cli, "sys", types.SimpleNamespace(stderr=screen))

    result = invoke(
        "sweep", str(SWEEP), "--serial", "--limit", "3", "--out", str(tmp_path), *flags
    )

    assert result.exit_code == 0
    assert ("3/3" in screen.getvalue()) is drawn
    assert ("run/s" in screen.getvalue() or "s/run" in screen.getvalue()) is drawn


# --- failures (in this process, with the command's messages) ------------------------


FAILING_SWEEP = """\
scenario: {tiny}
set: {{duration_s: 2}}
grid:
  warmup_s: [1, 3]
zip:
  classes[chat].request_bytes:
    - 3000
    - {{distribution: empirical, file: {sizes}, column: size}}
"""


@pytest.fixture
def failing_sweep(tmp_path: Path) -> Path:
    """4 points: 0 runs, 1 fails in the engine, 2 and 3 are invalid.

    A file of sizes that are not numbers passes validation (which reads only
    its header) and fails when the run draws from it. A warm-up of 3 s is
    longer than the 2 s the sweep sets.
    """
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("size\nabc\ndef\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(FAILING_SWEEP.format(tiny=TINY, sizes=sizes))
    return path


def test_failed_runs_are_reported_and_the_command_exits_1(
    failing_sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(failing_sweep.parent)

    result = invoke("sweep", "sweep.yaml", "--serial", "--out", "out")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        r"ran: 4 runs in [0-9.]+ s on this process; 3 failed, 0 already written",
        lines[1],
    )
    assert lines[2] == "wrote: out/results (1 of 4 runs); next: placesim summarize out"
    stderr = result.stderr.splitlines()
    assert stderr[0] == "failed: point 1 replication 0:"
    assert stderr[1].startswith(
        "  polars.exceptions.InvalidOperationError: conversion from `str` to `f64` "
    )
    assert re.search(r" \(at \w+\.py:\d+ in \w+\)$", stderr[1])
    assert stderr[2:] == [
        "failed: point 2 replication 0:",
        "  sweep.yaml:4:17: grid.warmup_s[1]: expected a warm-up shorter than "
        "duration_s (2 s); got 3 (point 2)",
        "failed: point 3 replication 0:",
        "  sweep.yaml:4:17: grid.warmup_s[1]: expected a warm-up shorter than "
        "duration_s (2 s); got 3 (point 3)",
        "Error: 3 runs failed; all errors are in out/failures.parquet; after a fix, "
        "rerun them with --resume",
    ]


# --- statistics ------------------------------------------------------------------


def test_t_critical_values_match_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")

    for df in [*range(1, 41), 60, 120, 500]:
        assert t_critical(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-9)
    assert t_critical(5, 0.9) == pytest.approx(scipy_stats.t.ppf(0.95, 5), rel=1e-9)


def test_pareto_front_keeps_the_points_no_other_beats_on_cost_and_p95() -> None:
    frame = pl.DataFrame(
        {
            "cost_usd_mean": [1.0, 2.0, 2.0, 3.0, 0.5, None, 1.0],
            "latency_p95_ms_mean": [9.0, 5.0, 6.0, 5.0, 20.0, 1.0, 9.0],
        }
    )

    marked = pareto_front(frame, "cost_usd").to_list()

    # 2 is beaten by 1 (same cost, faster), 3 by 1 (cheaper, as fast); 0 and 6
    # tie and beat nobody else; 5 has no cost.
    assert marked == [True, True, False, False, True, False, True]


def synthetic_sweep(out: Path, with_cost: bool) -> None:
    """A finished sweep of 2 points x 3 replications with chosen figures."""
    figures = {0: [100.0, 110.0, 120.0], 1: [50.0, 52.0, 60.0]}
    costs = {0: [1.0, 1.0, 1.0], 1: [2.0, 2.5, 3.0]}
    manifest = {
        "name": "synthetic",
        "replications": 3,
        "parameters": ["seed"],
        "points": [[1], [2]],
    }
    out.mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps(manifest))
    layout = Layout(out, 2)
    parameters = pl.DataFrame({"point": [0], "param:seed": [1]})
    for point, values in figures.items():
        for replication, p95 in enumerate(values):
            summary = pl.DataFrame(
                {"scope": ["overall"], "name": ["all"], "latency_p95_ms": [p95]}
            )
            if with_cost:
                cost = costs[point][replication]
                summary = summary.with_columns(cost_usd=pl.lit(cost))
            rows = run_rows(summary, replication, replication, parameters)
            write_run(layout, point, replication, rows)


def test_summaries_average_replications_with_student_t_intervals(
    tmp_path: Path,
) -> None:
    synthetic_sweep(tmp_path / "out", with_cost=True)

    summary = summarize_sweep(tmp_path / "out")

    frame = summary.points.sort("point")
    half = 4.302652729911275 * 10.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n)
    assert frame["latency_p95_ms_mean"].to_list() == [110.0, pytest.approx(54.0)]
    assert frame["latency_p95_ms_ci_low"][0] == pytest.approx(110.0 - half)
    assert frame["latency_p95_ms_ci_high"][0] == pytest.approx(110.0 + half)
    assert frame["cost_usd_ci_low"][0] == 1.0
    assert frame["runs"].to_list() == [3, 3]
    assert frame["pareto"].to_list() == [True, True]
    assert summary.cost_column == "cost_usd"
    # Sorted by mean cost.
    assert summary.points["point"].to_list() == [0, 1]
    assert_frame_equal(
        pl.read_parquet(tmp_path / "out" / "points.parquet"), summary.points
    )


def test_summarize_without_a_cost_column_skips_the_pareto_mark_and_says_so(
    tmp_path: Path,
) -> None:
    synthetic_sweep(tmp_path / "out", with_cost=False)

    result = invoke("summarize", str(tmp_path / "out"))

    assert result.exit_code == 0
    assert result.stderr == (
        "pareto: skipped, the results have no cost column (a number ending in _usd)\n"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "summarize: sweep=synthetic points=2 replications=3 runs=6 failed=0 "
        "confidence=95% (Student t)"
    )
    assert lines[1].split() == ["point", "seed", "runs", "p95_ms", "±p95"]
    assert [line.split() for line in lines[3:5]] == [
        ["1", "2", "3", "54.0", "13.1"],
        ["0", "1", "3", "110.0", "24.8"],
    ]
    assert lines[-1] == f"wrote: {tmp_path / 'out' / 'points.parquet'}"


def test_summarize_prints_csv_of_every_point(serial_out: Path) -> None:
    result = invoke("summarize", str(serial_out), "--format", "csv")

    frame = pl.read_csv(result.stdout.encode())
    assert frame.height == 6
    assert frame["runs"].to_list() == [2] * 6
    assert {"latency_p95_ms_ci_high", "pareto"} <= set(frame.columns)


# --- Ray -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_environment() -> Iterator[None]:
    """No token authentication and no usage stats, for every Ray the tests start.

    Ray reads its authentication mode once, when first imported, while a new
    local cluster turns token authentication on unless told otherwise: a
    process that imported Ray earlier and the cluster it starts would then
    disagree. Turning it off for these short-lived local clusters keeps this
    process, `ray start` and the `placesim` commands in agreement, and leaves
    ~/.ray alone.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "disabled")
        patch.setenv("RAY_DISABLE_USAGE_STATS", "1")
        patch.delenv("RAY_ADDRESS", raising=False)
        yield


@pytest.fixture(scope="module")
def ray_runtime(ray_environment: None) -> Iterator[None]:
    """A 2-CPU Ray in this process; `run_sweep` uses it when no address is given."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def embedded_rows(
    ray_runtime: None, tmp_path_factory: pytest.TempPathFactory
) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("embedded") / "out"
    result = run_sweep(SWEEP, out)
    assert (result.completed, result.failures) == (RUNS, ())
    return read_results(out)


@pytest.mark.ray
def test_a_sweep_on_ray_gives_the_rows_of_the_serial_run(
    embedded_rows: pl.DataFrame, serial_rows: pl.DataFrame
) -> None:
    assert_frame_equal(embedded_rows, serial_rows)


@pytest.mark.ray
@pytest.mark.parametrize(("in_flight", "batch"), [(1, 1), (4, 1), (2, 5)])
def test_results_do_not_depend_on_tasks_in_flight_or_batches(
    embedded_rows: pl.DataFrame, tmp_path: Path, in_flight: int, batch: int
) -> None:
    run_sweep(SWEEP, tmp_path, max_in_flight=in_flight, batch_size=batch)

    assert_frame_equal(read_results(tmp_path), embedded_rows)


@pytest.mark.ray
def test_resume_after_a_limit_runs_only_the_runs_not_written(
    embedded_rows: pl.DataFrame, tmp_path: Path
) -> None:
    first = run_sweep(SWEEP, tmp_path, limit=5)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.glob("results/*/*")}

    rest = run_sweep(SWEEP, tmp_path, resume=True)

    assert (first.completed, first.remaining) == (5, 7)
    assert (rest.skipped, rest.completed, rest.remaining) == (5, 7, 0)
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert_frame_equal(read_results(tmp_path), embedded_rows)


@pytest.mark.ray
def test_failing_runs_on_ray_are_recorded_and_the_others_complete(
    ray_runtime: None, failing_sweep: Path
) -> None:
    out = failing_sweep.parent / "out"

    result = run_sweep(failing_sweep, out)

    failures = read_failures(out)
    assert (result.completed, len(result.failures)) == (1, 3)
    assert read_results(out)["point"].unique().to_list() == [0]
    assert failures.select("point", "replication", "seed", "kind").rows() == [
        (1, 0, 3, "error"),
        (2, 0, 3, "invalid"),
        (3, 0, 3, "invalid"),
    ]
    assert failures["error"][2] == (
        f"{failing_sweep}:4:17: grid.warmup_s[1]: expected a warm-up shorter than "
        "duration_s (2 s); got 3 (point 3)"
    )
    assert failures["param:warmup_s"].to_list() == [1, 3, 3]


def _session_processes(session: int) -> list[int]:
    """Live processes of a session (zombies left out), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _, _, sid = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(int(entry))
    return found


def _end_session(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, then whatever it left.

    The leader alone gets SIGTERM (`ray start` then stops its own processes in
    about two seconds); what is still alive after that is killed by its id.
    """
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 10
    while (left := _session_processes(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        os.kill(pid, signal.SIGKILL)


def _placesim(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


@pytest.mark.ray
def test_ctrl_c_stops_an_embedded_sweep_and_resume_finishes_it(
    embedded_rows: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = _placesim("sweep", str(SWEEP), "--out", str(out), "--max-in-flight", "2")
    sweep = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(Layout(out, 6).done()) < 2 and sweep.poll() is None:
            assert time.monotonic() < deadline, "no result within 2 minutes"
            time.sleep(0.02)
        sweep.send_signal(signal.SIGINT)
        _, stderr = sweep.communicate(timeout=60)
    finally:
        _end_session(sweep)

    done = len(Layout(out, 6).done())
    assert sweep.returncode == 130, stderr.decode()
    assert stderr.decode().endswith(
        f"interrupted: {done} of {RUNS} runs written in {out}; continue with: "
        f"placesim sweep {SWEEP} --out {out} --resume\n"
    )
    assert 2 <= done < RUNS
    # The embedded Ray went with the command.
    deadline = time.monotonic() + 10
    while _session_processes(sweep.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_processes(sweep.pid) == []

    rest = run_sweep(SWEEP, out, resume=True)

    assert (rest.skipped, rest.completed) == (done, RUNS - done)
    assert_frame_equal(read_results(out), embedded_rows)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def ray_head(ray_environment: None) -> Iterator[str]:
    """A Ray head on a free local port, stopped with all it started at teardown.

    `ray start --block` runs in a session of its own, and teardown ends that
    session's processes by their ids: `ray stop` would stop every Ray on the
    machine, this module's own runtime included. The temporary folder is short
    because Ray's socket paths must fit in 107 bytes.
    """
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    log_path = Path(temp_dir + ".log")
    command = [
        "ray",
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    with log_path.open("wb") as log:
        head = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log_path.read_bytes():
            assert head.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        _end_session(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
        log_path.unlink(missing_ok=True)


@pytest.mark.ray
def test_a_sweep_on_a_ray_cluster_gives_the_rows_of_the_embedded_run(
    ray_head: str, embedded_rows: pl.DataFrame, tmp_path: Path
) -> None:
    command = _placesim(
        "sweep", str(SWEEP), "--address", ray_head, "--out", str(tmp_path), "--quiet"
    )

    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    assert f"on the Ray cluster at {ray_head} (2 CPUs)" in done.stdout
    assert_frame_equal(read_results(tmp_path), embedded_rows)
