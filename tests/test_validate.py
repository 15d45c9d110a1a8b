"""`placesim validate` and `placesim run` on bad input: the exact text a user sees.

Every bad file is reported the same way on stderr: a header naming the file and
the number of problems, one located line per problem, then a hint. The exit code
is 1 and there is no traceback unless `--debug` is given.

The files live in tests/data; each test runs from that folder so that paths in
the messages read exactly as a user in that folder would see them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import main
from sim.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
VALIDATE_HINT = "Try 'placesim validate --help' for help."
RUN_HINT = "Try 'placesim run --help' for help."


@pytest.fixture(autouse=True)
def in_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def report(header: str, *problems: str, hint: str = VALIDATE_HINT) -> str:
    """The whole stderr of a failed command: header, problem lines, hint."""
    lines = [f"Error: {header}", *(f"  {problem}" for problem in problems), hint]
    return "\n".join(lines) + "\n"


def assert_reported(result: Result, expected_stderr: str) -> None:
    assert result.stderr == expected_stderr
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    # click turned the error into a message; nothing escaped as an exception.
    assert isinstance(result.exception, SystemExit)


# --- one problem per file -------------------------------------------------------------

SINGLE_PROBLEMS = {
    "syntax error": (
        "bad_syntax.yaml",
        "bad_syntax.yaml:8:14: expected valid YAML; got a syntax error "
        "(expected ',' or '}', but got ':') while parsing a flow mapping "
        "that starts at line 7, column 14",
    ),
    "unknown key, with a suggestion": (
        "bad_unknown_key.yaml",
        "bad_unknown_key.yaml:4:1: warmup: expected one of the keys name, "
        "description, topology, seed, duration_s, requests, warmup_s, slo_ms, "
        "cost_allocation, catalog, placements, classes; got 'warmup'. "
        "Did you mean 'warmup_s'?",
    ),
    "wrong type": (
        "bad_type.yaml",
        "bad_type.yaml:3:7: seed: expected an integer; got 'seven'",
    ),
    "zero rate": (
        "bad_rate_zero.yaml",
        "bad_rate_zero.yaml:7:45: classes[0].arrival.rate_per_s: "
        "expected a number > 0; got 0",
    ),
    "negative rate": (
        "bad_rate_negative.yaml",
        "bad_rate_negative.yaml:9:19: classes[0].arrival.rate_per_s: "
        "expected a number > 0; got -3",
    ),
    "link to an unknown node": (
        "bad_link_topology.yaml",
        "bad_link_topology.yaml:11:18: links[1].b: expected a known node "
        "(clients, edge, region); got node 'regon', which is not defined. "
        "Did you mean 'region'?",
    ),
    "unknown pool in a placement": (
        "bad_pool.yaml",
        "bad_pool.yaml:8:23: classes[0].placement.pool: expected a known pool "
        "(cloud-gpu, edge-gpu, region-gpu); got pool 'edge-gpus', which is not "
        "defined. Did you mean 'edge-gpu'?",
    ),
    "trace without the timestamp column": (
        "bad_trace_column.yaml",
        "bad_trace_column.yaml:6:73: classes[0].arrival.timestamp_column: "
        "expected a column of traces/small.csv (TIMESTAMP, ContextTokens, "
        "GeneratedTokens); got 'TIMESTAMPS'. Did you mean 'TIMESTAMP'?",
    ),
    "origin that cannot reach its pool": (
        "bad_unreachable.yaml",
        "bad_unreachable.yaml:8:16: classes[0].placement: expected pool "
        "'cloud-gpu' reachable from 'clients' over the links; got no route from "
        "'clients' to node 'cloud'",
    ),
    "duplicate key": (
        "bad_duplicate_key.yaml",
        "bad_duplicate_key.yaml:10:1: seed: expected each key once; "
        "got a second 'seed'",
    ),
    "file that does not exist": (
        "nowhere.yaml",
        "nowhere.yaml: expected an existing file; got no file at that path",
    ),
}


@pytest.mark.parametrize(
    ("file", "problem"), SINGLE_PROBLEMS.values(), ids=SINGLE_PROBLEMS.keys()
)
def test_validate_reports_the_problem_located_in_the_file(
    file: str, problem: str
) -> None:
    result = invoke("validate", file)

    assert_reported(result, report(f"{file}: 1 problem", problem))
    assert result.stdout == ""


# `run` takes scenarios only; a topology file is not one.
SCENARIO_PROBLEMS = {
    name: case
    for name, case in SINGLE_PROBLEMS.items()
    if not case[0].endswith("_topology.yaml")
}


@pytest.mark.parametrize(
    ("file", "problem"), SCENARIO_PROBLEMS.values(), ids=SCENARIO_PROBLEMS.keys()
)
def test_run_reports_the_same_problem_with_its_own_hint_and_writes_nothing(
    file: str, problem: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    result = invoke("run", file, "--out", str(out))

    assert_reported(result, report(f"{file}: 1 problem", problem, hint=RUN_HINT))
    assert result.stdout == ""
    assert not out.exists() or list(out.iterdir()) == []


def test_missing_trace_file_is_located_at_the_file_key() -> None:
    result = invoke("validate", "bad_trace_missing.yaml")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: bad_trace_missing.yaml: 1 problem\n"
        "  bad_trace_missing.yaml:6:37: classes[0].arrival.file: "
        "expected an existing CSV or Parquet trace file; got "
    )
    assert result.stderr.endswith(f"\n{VALIDATE_HINT}\n")


def test_missing_trace_file_is_quoted_and_said_to_be_missing() -> None:
    result = invoke("validate", "bad_trace_missing.yaml")

    assert_reported(
        result,
        report(
            "bad_trace_missing.yaml: 1 problem",
            "bad_trace_missing.yaml:6:37: classes[0].arrival.file: expected an "
            "existing CSV or Parquet trace file; got 'traces/nowhere.csv', "
            "which does not exist",
        ),
    )


def test_missing_topology_file_is_quoted_and_said_to_be_missing() -> None:
    result = invoke("validate", "bad_topology_missing.yaml")

    assert_reported(
        result,
        report(
            "bad_topology_missing.yaml: 1 problem",
            "bad_topology_missing.yaml:2:11: topology: expected an existing "
            "topology file; got 'nowhere.yaml', which does not exist",
        ),
    )


def test_misspelt_required_key_is_reported_as_missing_and_as_unknown() -> None:
    result = invoke("validate", "bad_required_key_typo.yaml")

    assert_reported(
        result,
        report(
            "bad_required_key_typo.yaml: 2 problems",
            "bad_required_key_typo.yaml:5:5: classes[0]: expected required key "
            "'placement'; got nothing",
            "bad_required_key_typo.yaml:8:5: classes[0].placment: expected one of "
            "the keys name, origin, arrival, placement, request_bytes, "
            "response_bytes, input_tokens, output_tokens, service_time_ms, "
            "slo_ms, model, tags; got 'placment'. Did you mean 'placement'?",
        ),
    )


def test_topology_with_misspelt_nodes_key_is_checked_as_a_topology() -> None:
    result = invoke("validate", "bad_nodes_key_topology.yaml")

    assert_reported(
        result,
        report(
            "bad_nodes_key_topology.yaml: 2 problems",
            "bad_nodes_key_topology.yaml:2:1: expected required key 'nodes'; "
            "got nothing",
            "bad_nodes_key_topology.yaml:3:1: node: expected one of the keys "
            "name, description, nodes, links; got 'node'. Did you mean 'nodes'?",
        ),
    )


# --- several problems at once ---------------------------------------------------------


def test_problems_found_by_different_rules_are_listed_together_by_line() -> None:
    # Found in the order: duplicate class (line 11), warm-up (line 5), then the
    # cross-file origin (line 8) and pool (line 10).
    result = invoke("validate", "bad_many.yaml")

    assert_reported(
        result,
        report(
            "bad_many.yaml: 4 problems",
            "bad_many.yaml:5:11: warmup_s: expected a warm-up shorter than "
            "duration_s (10 s); got 10",
            "bad_many.yaml:8:13: classes[0].origin: expected a known node "
            "(clients, cloud, edge, region); got node 'clints', which is not "
            "defined. Did you mean 'clients'?",
            "bad_many.yaml:10:23: classes[0].placement.pool: expected a known pool "
            "(cloud-gpu, edge-gpu, region-gpu); got pool 'edge-gpus', which is "
            "not defined. Did you mean 'edge-gpu'?",
            "bad_many.yaml:11:11: classes[1].name: expected a unique class name; "
            "got 'detect'",
        ),
    )


def test_every_schema_problem_of_a_file_is_listed_at_once() -> None:
    result = invoke("validate", "bad_schema_many.yaml")

    assert_reported(
        result,
        report(
            "bad_schema_many.yaml: 4 problems",
            "bad_schema_many.yaml:4:11: warmup_s: expected a number >= 0; got -1",
            "bad_schema_many.yaml:8:45: classes[0].arrival.rate_per_s: "
            "expected a number > 0; got 0",
            "bad_schema_many.yaml:10:13: classes[0].slo_ms: expected a number > 0; "
            "got 'fast'",
            "bad_schema_many.yaml:13:24: classes[1].arrival.process: expected one "
            "of 'poisson', 'fixed', 'trace'; got 'poison'. Did you mean 'poisson'?",
        ),
    )


def test_schema_and_cross_file_problems_are_listed_together() -> None:
    result = invoke("validate", "bad_mixed.yaml")

    assert_reported(
        result,
        report(
            "bad_mixed.yaml: 2 problems",
            "bad_mixed.yaml:4:7: seed: expected an integer; got 'seven'",
            "bad_mixed.yaml:10:23: classes[0].placement.pool: expected a known "
            "pool (cloud-gpu, edge-gpu, region-gpu); got pool 'edge-gpus', which "
            "is not defined. Did you mean 'edge-gpu'?",
        ),
    )


LINK_TO_REGON = (
    "bad_link_topology.yaml:11:18: links[1].b: expected a known node "
    "(clients, edge, region); got node 'regon', which is not defined. "
    "Did you mean 'region'?"
)


def test_problems_of_a_scenario_and_its_topology_are_reported_together() -> None:
    result = invoke("validate", "bad_two_files.yaml")

    assert_reported(
        result,
        report(
            "2 problems in 2 files",
            "bad_two_files.yaml:9:23: classes[0].placement.pool: expected a known "
            "pool (edge-gpu); got pool 'edge-gpus', which is not defined. "
            "Did you mean 'edge-gpu'?",
            LINK_TO_REGON,
        ),
    )


def test_topology_schema_problems_come_with_the_scenario_problems() -> None:
    result = invoke("validate", "bad_topology_schema.yaml")

    assert_reported(
        result,
        report(
            "3 problems in 2 files",
            "bad_topology_schema.yaml:5:11: warmup_s: expected a warm-up shorter "
            "than duration_s (10 s); got 20",
            "bad_both_topology.yaml:5:11: nodes[1].kind: expected one of "
            "'device', 'edge_site', 'region', 'cloud', 'cdn'; got 'edge_sites'. "
            "Did you mean 'edge_site'?",
            "bad_both_topology.yaml:9:58: links[0].bandwidth_mbps: expected a "
            "number > 0; got 0",
        ),
    )


def test_scenario_schema_problems_do_not_hide_the_topology_problems() -> None:
    result = invoke("validate", "bad_both.yaml")

    assert_reported(
        result,
        report(
            "3 problems in 2 files",
            "bad_both.yaml:7:45: classes[0].arrival.rate_per_s: expected a "
            "number > 0; got -1",
            "bad_both_topology.yaml:5:11: nodes[1].kind: expected one of "
            "'device', 'edge_site', 'region', 'cloud', 'cdn'; got 'edge_sites'. "
            "Did you mean 'edge_site'?",
            "bad_both_topology.yaml:9:58: links[0].bandwidth_mbps: expected a "
            "number > 0; got 0",
        ),
    )


def test_validate_lists_the_problems_of_every_file_given_and_the_good_ones() -> None:
    result = invoke("validate", "bad_type.yaml", "bad_link_topology.yaml", "tiny.yaml")

    assert result.stdout == "ok: tiny.yaml (scenario)\n"
    assert_reported(
        result,
        report(
            "2 problems in 2 files",
            "bad_type.yaml:3:7: seed: expected an integer; got 'seven'",
            LINK_TO_REGON,
        ),
    )


def test_a_topology_given_twice_reports_each_problem_once() -> None:
    result = invoke("validate", "bad_two_files.yaml", "bad_link_topology.yaml")

    assert_reported(
        result,
        report(
            "2 problems in 2 files",
            "bad_two_files.yaml:9:23: classes[0].placement.pool: expected a known "
            "pool (edge-gpu); got pool 'edge-gpus', which is not defined. "
            "Did you mean 'edge-gpu'?",
            LINK_TO_REGON,
        ),
    )


def test_run_reports_every_problem_of_both_files(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = invoke("run", "bad_many.yaml", "--out", str(out))

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: bad_many.yaml: 4 problems\n")
    assert result.stderr.count("\n  bad_many.yaml:") == 4
    assert result.stderr.endswith(f"\n{RUN_HINT}\n")
    assert not out.exists()


def test_run_on_a_bad_scenario_leaves_an_existing_out_folder_untouched(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()

    result = invoke("run", "bad_two_files.yaml", "--out", str(out))

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 2 problems in 2 files\n")
    assert list(out.iterdir()) == []


# --- --debug -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "run"])
def test_debug_lets_the_input_error_propagate(command: str) -> None:
    result = invoke("--debug", command, "bad_type.yaml")

    assert isinstance(result.exception, InputError)
    assert str(result.exception) == (
        "bad_type.yaml: 1 problem\n"
        "  bad_type.yaml:3:7: seed: expected an integer; got 'seven'"
    )
    assert result.exit_code == 1
    assert result.stderr == ""


# --- good files -----------------------------------------------------------------------


def test_validate_accepts_the_test_scenario_and_its_topology() -> None:
    result = invoke("validate", "tiny.yaml", "tiny_topology.yaml")

    assert result.stdout == (
        "ok: tiny.yaml (scenario)\nok: tiny_topology.yaml (topology)\n"
    )
    assert result.stderr == ""
    assert result.exit_code == 0


def test_every_shipped_scenario_and_topology_validates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    scenarios = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("scenarios/*.yaml"))
    topologies = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.glob("topologies/*.yaml")
    )
    assert "scenarios/three_tier.yaml" in scenarios
    assert "topologies/three_tier.yaml" in topologies

    result = invoke("validate", *scenarios, *topologies)

    expected = [
        f"ok: {p} (sweep)" if "sweep" in p else f"ok: {p} (scenario)" for p in scenarios
    ]
    expected += [f"ok: {p} (topology)" for p in topologies]
    assert result.stdout.splitlines() == expected
    assert result.stderr == ""
    assert result.exit_code == 0
