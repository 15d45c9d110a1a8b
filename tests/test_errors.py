"""Tests for sim.errors: how problems and input errors read to a user."""

import pickle

import pytest

from sim.errors import InputError, PlacesimError, Problem, closest, merge

TIER = Problem(
    "scenarios/edge_heavy.yaml",
    14,
    9,
    "placements[1].tier",
    "one of 'edge', 'region', 'cloud'",
    "'edg'",
    "edge",
)
RATE = Problem(
    "scenarios/edge_heavy.yaml",
    22,
    5,
    "workload.arrival_rate_per_s",
    "a number > 0",
    "-3",
)


def test_problem_shows_location_field_expectation_and_suggestion() -> None:
    assert str(TIER) == (
        "scenarios/edge_heavy.yaml:14:9: placements[1].tier: expected one of "
        "'edge', 'region', 'cloud'; got 'edg'. Did you mean 'edge'?"
    )


def test_problem_without_suggestion_ends_after_found() -> None:
    assert str(RATE) == (
        "scenarios/edge_heavy.yaml:22:5: workload.arrival_rate_per_s: "
        "expected a number > 0; got -3"
    )


@pytest.mark.parametrize(
    ("line", "column", "field", "text"),
    [
        (3, None, "seed", "a.yaml:3: seed: expected an integer; got 'x'"),
        (None, None, "seed", "a.yaml: seed: expected an integer; got 'x'"),
        (None, 4, "seed", "a.yaml: seed: expected an integer; got 'x'"),
        (3, 1, "", "a.yaml:3:1: expected an integer; got 'x'"),
    ],
)
def test_problem_omits_unknown_parts(
    line: int | None, column: int | None, field: str, text: str
) -> None:
    problem = Problem("a.yaml", line, column, field, "an integer", "'x'")
    assert str(problem) == text


def test_input_error_with_one_problem_says_one_problem() -> None:
    err = InputError([RATE])
    assert err.format() == (
        "scenarios/edge_heavy.yaml: 1 problem\n"
        "  scenarios/edge_heavy.yaml:22:5: workload.arrival_rate_per_s: "
        "expected a number > 0; got -3"
    )


def test_input_error_sorts_problems_of_one_file_by_line() -> None:
    err = InputError([RATE, TIER])
    assert str(err) == err.format()
    assert err.format().splitlines() == [
        "scenarios/edge_heavy.yaml: 2 problems",
        f"  {TIER}",
        f"  {RATE}",
    ]


def test_input_error_groups_several_files_in_first_seen_order() -> None:
    late = Problem("b.yaml", 9, 1, "x", "an integer", "'9'")
    early = Problem("b.yaml", 2, 3, "y", "a string", "2")
    whole = Problem("b.yaml", None, None, "", "a mapping", "a list")
    err = InputError([late, RATE, early, whole])
    assert err.format().splitlines() == [
        "4 problems in 2 files",
        "  b.yaml: expected a mapping; got a list",
        "  b.yaml:2:3: y: expected a string; got 2",
        "  b.yaml:9:1: x: expected an integer; got '9'",
        f"  {RATE}",
    ]


def test_input_error_keeps_problems_in_given_order() -> None:
    assert InputError([RATE, TIER]).problems == (RATE, TIER)


def test_input_error_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        InputError([])


def test_input_error_is_a_placesim_error_and_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(InputError([TIER, RATE])))
    assert issubclass(InputError, PlacesimError)
    assert isinstance(err, InputError)
    assert err.problems == (TIER, RATE)


def test_merge_joins_problems_in_order() -> None:
    other = Problem("b.yaml", 1, 1, "seed", "an integer", "'x'")
    merged = merge([InputError([RATE]), InputError([other, TIER])])
    assert merged.problems == (RATE, other, TIER)


def test_merge_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        merge([])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("edg", "edge"),
        ("Edge", "edge"),
        ("regoin", "region"),
        ("clod", "cloud"),
        ("satellite", None),
        ("", None),
    ],
)
def test_closest_finds_near_misses_only(name: str, expected: str | None) -> None:
    assert closest(name, ["edge", "region", "cloud"]) == expected


def test_closest_accepts_any_iterable() -> None:
    assert closest("rate_per_sec", (key for key in ["rate_per_s", "burst"])) == (
        "rate_per_s"
    )
