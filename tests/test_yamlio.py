"""Tests for sim.yamlio: located YAML loading and readable validation problems."""

import textwrap
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Self

import pytest
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from sim.errors import InputError
from sim.yamlio import (
    LocatedYaml,
    Path_,
    describe_value,
    format_path,
    load_yaml,
    validate,
)

# --- Small models in the shape placesim's schemas take ---------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Poisson(Strict):
    process: Literal["poisson"]
    rate_per_s: Annotated[float, Field(gt=0)]


class Fixed(Strict):
    process: Literal["fixed"]
    interval_s: Annotated[float, Field(gt=0)]


class RequestClass(Strict):
    name: str
    arrival: Annotated[Poisson | Fixed, Field(discriminator="process")]
    tier: Literal["edge", "region", "cloud"] = "edge"
    max_queue: int | Literal["unlimited"] = "unlimited"
    budget_usd: Annotated[float, Field(gt=0)] | Literal["unlimited"] = "unlimited"
    weights: dict[str, float] = {}

    @field_validator("name")
    @classmethod
    def _name_has_no_spaces(cls, name: str) -> str:
        if " " in name:
            msg = "a name without spaces"
            raise ValueError(msg)
        return name


class Limits(Strict):
    horizon_s: float = Field(default=60, gt=0, le=3600)
    warmup_s: float = 0


class Run(Strict):
    seed: int = 0
    limits: Limits = Limits()
    classes: list[RequestClass]

    @model_validator(mode="after")
    def _names_are_unique(self) -> Self:
        names = [request_class.name for request_class in self.classes]
        repeated = len(names) - len(set(names))
        if repeated:
            msg = f"each class name once; got {repeated} repeated"
            raise ValueError(msg)
        return self


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """Load and validate `text` as a Run, returning each problem as shown."""
    doc = load_yaml(write(tmp_path, text), display_name="run.yaml")
    with pytest.raises(InputError) as caught:
        validate(doc, Run)
    return [str(problem) for problem in caught.value.problems]


# --- Loading ---------------------------------------------------------------------


def test_load_keeps_positions_of_values_and_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        seed: 7
        classes:
          - name: chat
            arrival: {process: poisson, rate_per_s: 2.5}
        """,
    )
    doc = load_yaml(path)

    assert doc.file == str(path)
    assert doc.data == {
        "seed": 7,
        "classes": [
            {"name": "chat", "arrival": {"process": "poisson", "rate_per_s": 2.5}}
        ],
    }
    assert doc.locate(("seed",)) == (1, 7)
    assert doc.locate(("seed",), key=True) == (1, 1)
    assert doc.locate(("classes", 0)) == (3, 5)
    assert doc.locate(("classes", 0, "arrival"), key=True) == (4, 5)
    assert doc.locate(("classes", 0, "arrival", "rate_per_s")) == (4, 45)


def test_locate_falls_back_to_nearest_ancestor(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, "limits:\n  warmup_s: 5\n"))
    assert doc.locate(("limits", "horizon_s")) == (2, 3)
    assert doc.locate(("limits", "horizon_s"), key=True) == (2, 3)
    assert doc.locate(("nowhere", 3)) == (1, 1)
    assert LocatedYaml("x.yaml", {}).locate(("a",)) == (None, None)


def test_problem_is_located_and_named_by_path(tmp_path: Path) -> None:
    doc = load_yaml(
        write(tmp_path, "links:\n  - {a: edge, b: regon}\n"), display_name="t.yaml"
    )
    problem = doc.problem(("links", 0, "b"), "a defined node", "'regon'", "region")
    assert str(problem) == (
        "t.yaml:2:18: links[0].b: expected a defined node; got 'regon'. "
        "Did you mean 'region'?"
    )


def test_merge_keys_are_followed_and_explicit_keys_win(tmp_path: Path) -> None:
    text = """
    base: &base {rate_per_s: 1, burst: 2}
    other:
      <<: *base
      burst: 3
    """
    doc = load_yaml(write(tmp_path, text))
    assert doc.data["other"] == {"rate_per_s": 1, "burst": 3}
    assert doc.locate(("other",)) == (3, 3)
    assert doc.locate(("other", "burst")) == (4, 10)
    assert doc.locate(("other", "rate_per_s")) == (1, 26)


def test_every_duplicate_key_is_reported(tmp_path: Path) -> None:
    text = """
    seed: 1
    seed: 2
    limits:
      warmup_s: 1
      horizon_s: 5
      warmup_s: 2
    """
    with pytest.raises(InputError) as caught:
        load_yaml(write(tmp_path, text), display_name="run.yaml")
    assert str(caught.value) == (
        "run.yaml: 2 problems\n"
        "  run.yaml:2:1: seed: expected each key once; got a second 'seed'\n"
        "  run.yaml:6:3: limits.warmup_s: expected each key once; "
        "got a second 'warmup_s'"
    )


def test_syntax_error_points_at_the_parser_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\nclasses: [a, b\nlimits: {}\n")
    with pytest.raises(InputError) as caught:
        load_yaml(path, display_name="run.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "run.yaml:3:7: expected valid YAML; "
        "got a syntax error (expected ',' or ']', but got ':') while parsing a "
        "flow sequence that starts at line 2, column 10"
    ]


def test_bad_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "limits:\n  warmup_s: 1\n horizon_s: 2\n")
    with pytest.raises(InputError) as caught:
        load_yaml(path, display_name="run.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.expected) == (3, 2, "valid YAML")


def test_undecodable_bytes_are_located(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(b"seed: 1\nname: ab\xffc\n")
    with pytest.raises(InputError) as caught:
        load_yaml(path, display_name="run.yaml")
    assert str(caught.value.problems[0]) == (
        "run.yaml:2:9: expected valid YAML; got bytes that are not utf-8 text"
    )


def test_missing_file_names_the_path_as_given(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(tmp_path / "absent.yaml", display_name="scenarios/absent.yaml")
    assert str(caught.value) == (
        "scenarios/absent.yaml: 1 problem\n"
        "  scenarios/absent.yaml: expected an existing file; got no file at that path"
    )


def test_file_defaults_to_the_path_as_given(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.yaml")
    with pytest.raises(InputError) as caught:
        load_yaml(missing)
    assert caught.value.problems[0].file == missing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "run.yaml: expected a mapping; got an empty document"),
        ("# nothing yet\n", "run.yaml: expected a mapping; got an empty document"),
        ("- edge\n- cloud\n", "run.yaml:1:1: expected a mapping; got a list"),
        ("just text\n", "run.yaml:1:1: expected a mapping; got 'just text'"),
    ],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(write(tmp_path, text), display_name="run.yaml")
    assert [str(p) for p in caught.value.problems] == [expected]


def test_unknown_tag_is_reported_where_it_is(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(write(tmp_path, "seed: 1\nrate: !weird 3\n"), display_name="r.yaml")
    assert str(caught.value.problems[0]) == (
        "r.yaml:2:7: rate: expected a plain YAML value; "
        "got could not determine a constructor for the tag '!weird'"
    )


# --- Showing paths and values ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("classes", 0, "arrival", "rate_per_s"), "classes[0].arrival.rate_per_s"),
        (("matrix", 1, 2), "matrix[1][2]"),
        (("seed",), "seed"),
        ((), ""),
    ],
)
def test_format_path_writes_yaml_paths(path: Path_, text: str) -> None:
    assert format_path(path) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("edg", "'edg'"),
        (-3, "-3"),
        (2.5, "2.5"),
        (False, "false"),
        (None, "null"),
        ({"a": 1}, "a mapping"),
        ([1, 2], "a list"),
        ("x" * 50, repr("x" * 37 + "...")),
    ],
)
def test_describe_value_shows_what_was_found(value: object, text: str) -> None:
    assert describe_value(value) == text


# --- Validating: one test per kind of pydantic error -----------------------------

VALID_CLASS = """
classes:
  - name: chat
    arrival: {process: poisson, rate_per_s: 2}
"""


def test_valid_file_gives_the_model(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, VALID_CLASS))
    run = validate(doc, Run)
    assert run.classes[0].arrival == Poisson(process="poisson", rate_per_s=2)


def test_unknown_key_points_at_the_key_and_lists_valid_keys(tmp_path: Path) -> None:
    text = VALID_CLASS + "limit:\n  horizon_s: 5\n"
    assert problems(tmp_path, text) == [
        "run.yaml:4:1: limit: expected one of the keys seed, limits, classes; "
        "got 'limit'. Did you mean 'limits'?"
    ]


def test_unknown_key_inside_a_union_member(tmp_path: Path) -> None:
    text = """
    classes:
      - name: chat
        arrival: {process: poisson, rate_per_s: 2, burts: 1}
    """
    assert problems(tmp_path, text) == [
        "run.yaml:3:48: classes[0].arrival.burts: expected one of the keys "
        "process, rate_per_s; got 'burts'"
    ]


def test_missing_key_points_at_the_parent_mapping(tmp_path: Path) -> None:
    text = """
    classes:
      - tier: cloud
        arrival: {process: fixed, interval_s: 1}
    """
    assert problems(tmp_path, text) == [
        "run.yaml:2:5: classes[0]: expected required key 'name'; got nothing"
    ]


def test_missing_top_level_key_is_a_whole_file_problem(tmp_path: Path) -> None:
    assert problems(tmp_path, "seed: 3\n") == [
        "run.yaml:1:1: expected required key 'classes'; got nothing"
    ]


def test_bound_in_annotated_field_of_a_union_member(tmp_path: Path) -> None:
    text = """
    classes:
      - name: chat
        arrival:
          process: poisson
          rate_per_s: -3
    """
    assert problems(tmp_path, text) == [
        "run.yaml:5:19: classes[0].arrival.rate_per_s: expected a number > 0; got -3"
    ]


def test_all_bounds_of_a_field_are_shown(tmp_path: Path) -> None:
    text = VALID_CLASS + "limits: {horizon_s: 7200}\n"
    assert problems(tmp_path, text) == [
        "run.yaml:4:21: limits.horizon_s: expected a number > 0 and <= 3600; got 7200"
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("seed: x", "run.yaml:1:7: seed: expected an integer; got 'x'"),
        ("seed: 1.5", "run.yaml:1:7: seed: expected an integer; got 1.5"),
        ("seed: [1]", "run.yaml:1:7: seed: expected an integer; got a list"),
        ("limits: 5", "run.yaml:1:9: limits: expected a mapping; got 5"),
        (
            "limits: {warmup_s: soon}",
            "run.yaml:1:20: limits.warmup_s: expected a number; got 'soon'",
        ),
        (
            "limits: {horizon_s: long}",
            "run.yaml:1:21: limits.horizon_s: expected a number > 0 and <= 3600; "
            "got 'long'",
        ),
    ],
)
def test_wrong_type_says_what_was_expected(
    tmp_path: Path, line: str, expected: str
) -> None:
    assert problems(tmp_path, line + "\n" + VALID_CLASS) == [expected]


def test_wrong_types_for_list_string_and_mapping(tmp_path: Path) -> None:
    text = """
    classes:
      - name: 5
        arrival: {process: fixed, interval_s: 1}
        weights: [1, 2]
      - chat
    """
    assert problems(tmp_path, text) == [
        "run.yaml:2:11: classes[0].name: expected a string; got 5",
        "run.yaml:4:14: classes[0].weights: expected a mapping; got a list",
        "run.yaml:5:5: classes[1]: expected a mapping; got 'chat'",
    ]
    assert problems(tmp_path, "classes: chat\n") == [
        "run.yaml:1:10: classes: expected a list; got 'chat'"
    ]


def test_dict_values_and_keys_are_located(tmp_path: Path) -> None:
    text = """
    classes:
      - name: chat
        arrival: {process: fixed, interval_s: 1}
        weights:
          edge: heavy
          3: 0.5
    """
    assert problems(tmp_path, text) == [
        "run.yaml:5:13: classes[0].weights.edge: expected a number; got 'heavy'",
        "run.yaml:6:7: classes[0].weights[3]: expected a string; got 3",
    ]


def test_literal_lists_choices_and_suggests_the_closest(tmp_path: Path) -> None:
    text = VALID_CLASS + "    tier: edg\n"
    assert problems(tmp_path, text) == [
        "run.yaml:4:11: classes[0].tier: expected one of 'edge', 'region', "
        "'cloud'; got 'edg'. Did you mean 'edge'?"
    ]


def test_literal_without_close_choice_has_no_suggestion(tmp_path: Path) -> None:
    text = VALID_CLASS + "    tier: 5\n"
    assert problems(tmp_path, text) == [
        "run.yaml:4:11: classes[0].tier: expected one of 'edge', 'region', "
        "'cloud'; got 5"
    ]


def test_discriminator_typo_points_at_the_tag(tmp_path: Path) -> None:
    text = """
    classes:
      - name: chat
        arrival:
          process: poison
          rate_per_s: 2
    """
    assert problems(tmp_path, text) == [
        "run.yaml:4:16: classes[0].arrival.process: expected one of 'poisson', "
        "'fixed'; got 'poison'. Did you mean 'poisson'?"
    ]


def test_missing_discriminator_points_at_the_mapping(tmp_path: Path) -> None:
    text = """
    classes:
      - name: chat
        arrival: {rate_per_s: 2}
    """
    assert problems(tmp_path, text) == [
        "run.yaml:3:14: classes[0].arrival: expected required key 'process' set "
        "to one of 'poisson', 'fixed'; got nothing"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1.5", "expected an integer or 'unlimited'; got -1.5"),
        (
            "unlimted",
            "expected an integer or 'unlimited'; got 'unlimted'. "
            "Did you mean 'unlimited'?",
        ),
    ],
)
def test_int_or_literal_union_is_one_problem(
    tmp_path: Path, value: str, expected: str
) -> None:
    text = VALID_CLASS + f"    max_queue: {value}\n"
    assert problems(tmp_path, text) == [
        f"run.yaml:4:16: classes[0].max_queue: {expected}"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-3", "expected a number > 0 or 'unlimited'; got -3"),
        ("cheap", "expected a number > 0 or 'unlimited'; got 'cheap'"),
    ],
)
def test_bounded_number_or_literal_union_is_one_problem(
    tmp_path: Path, value: str, expected: str
) -> None:
    text = VALID_CLASS + f"    budget_usd: {value}\n"
    assert problems(tmp_path, text) == [
        f"run.yaml:4:17: classes[0].budget_usd: {expected}"
    ]


def test_field_validator_message_is_the_expectation(tmp_path: Path) -> None:
    text = """
    classes:
      - name: web chat
        arrival: {process: fixed, interval_s: 1}
    """
    assert problems(tmp_path, text) == [
        "run.yaml:2:11: classes[0].name: expected a name without spaces; got 'web chat'"
    ]


def test_model_validator_after_reports_on_the_model(tmp_path: Path) -> None:
    text = VALID_CLASS + VALID_CLASS.replace("classes:\n", "")
    assert problems(tmp_path, text) == [
        "run.yaml:1:1: expected each class name once; got 1 repeated"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
    seed: x
    classes:
      - name: chat
        arrival: {process: poisson, rate_per_s: 0}
        tier: regio
      - arrival: {process: fixed}
    """
    assert problems(tmp_path, text) == [
        "run.yaml:1:7: seed: expected an integer; got 'x'",
        "run.yaml:4:45: classes[0].arrival.rate_per_s: expected a number > 0; got 0",
        "run.yaml:5:11: classes[0].tier: expected one of 'edge', 'region', "
        "'cloud'; got 'regio'. Did you mean 'region'?",
        "run.yaml:6:5: classes[1]: expected required key 'name'; got nothing",
        "run.yaml:6:14: classes[1].arrival: expected required key 'interval_s'; "
        "got nothing",
    ]


def test_validate_at_a_prefix_locates_within_the_file(tmp_path: Path) -> None:
    text = """
    meta: {owner: lab}
    run:
      limits: {horizon_s: 0}
    """
    doc = load_yaml(write(tmp_path, text), display_name="run.yaml")
    with pytest.raises(InputError) as caught:
        validate(doc, Limits, prefix=("run", "limits"))
    assert [str(p) for p in caught.value.problems] == [
        "run.yaml:3:23: run.limits.horizon_s: expected a number > 0 and <= 3600; got 0"
    ]
    with pytest.raises(InputError) as caught:
        validate(doc, Limits, prefix=("meta", "limits"))
    assert [str(p) for p in caught.value.problems] == [
        "run.yaml:1:7: meta: expected required key 'limits'; got nothing"
    ]


def test_model_union_reports_the_closest_member_only(tmp_path: Path) -> None:
    class Edge(Strict):
        site: str

    class Pool(Strict):
        pool: list[str]

    class Target(Strict):
        target: Edge | Pool

    doc = load_yaml(write(tmp_path, "target:\n  site: 5\n"), display_name="t.yaml")
    with pytest.raises(InputError) as caught:
        validate(doc, Target)
    assert [str(p) for p in caught.value.problems] == [
        "t.yaml:2:9: target.site: expected a string; got 5"
    ]


def test_enum_lists_values_and_suggests(tmp_path: Path) -> None:
    class Tier(Enum):
        EDGE = "edge"
        CLOUD = "cloud"

    class Site(Strict):
        tier: Tier

    doc = load_yaml(write(tmp_path, "tier: clod\n"), display_name="s.yaml")
    with pytest.raises(InputError) as caught:
        validate(doc, Site)
    assert [str(p) for p in caught.value.problems] == [
        "s.yaml:1:7: tier: expected one of 'edge', 'cloud'; got 'clod'. "
        "Did you mean 'cloud'?"
    ]


def test_callable_discriminator_with_tags(tmp_path: Path) -> None:
    def kind(data: object) -> str | None:
        return data.get("kind") if isinstance(data, dict) else None

    class Holder(Strict):
        arrival: Annotated[
            Annotated[Poisson, Tag("p")] | Annotated[Fixed, Tag("f")],
            Discriminator(kind),
        ]

    text = "arrival: {kind: p, rate_per_s: 1}\nother: {kind: q}\n"
    wrong_tag = load_yaml(write(tmp_path, "arrival: {kind: fx}\n"), display_name="w")
    with pytest.raises(InputError) as caught:
        validate(wrong_tag, Holder)
    assert [str(p) for p in caught.value.problems] == [
        "w:1:10: arrival: expected one of 'p', 'f'; got 'fx'. Did you mean 'f'?"
    ]

    doc = load_yaml(write(tmp_path, text), display_name="h.yaml")
    with pytest.raises(InputError) as caught:
        validate(doc, Holder)
    assert [str(p) for p in caught.value.problems] == [
        "h.yaml:1:10: arrival: expected required key 'process'; got nothing",
        "h.yaml:1:11: arrival.kind: expected one of the keys process, rate_per_s; "
        "got 'kind'",
        "h.yaml:2:1: other: expected one of the keys arrival; got 'other'",
    ]
