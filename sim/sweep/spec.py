"""The sweep file: its model, parameter paths and the points it expands into.

See :mod:`sim.sweep` for the file format. This module reads a sweep file,
checks it (every problem located in the file), resolves each parameter path
against the base scenario and its topology, and expands the blocks into an
ordered list of points. It never runs a simulation and never imports Ray.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.errors import InputError, Problem, closest
from sim.schema import load_scenario
from sim.yamlio import LocatedYaml, Path_, describe_value, format_path, load_yaml
from sim.yamlio import validate as validate_doc

__all__ = [
    "Base",
    "Parameter",
    "Point",
    "Sweep",
    "SweepFile",
    "is_sweep_file",
    "parse_path",
    "read_sweep",
]

Target = Literal["scenario", "topology"]
_TOKEN = re.compile(r"\.([^.\[\]]+)|\[([^\[\]]+)\]")
_FIRST_KEY = re.compile(r"[^.\[\]]+")


# --- the file ------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UniformDraw(_Model):
    """A float drawn uniformly between the two bounds."""

    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self) -> UniformDraw:
        low, high = self.uniform
        if high <= low:
            msg = f"bounds [low, high] with high > low; got [{low:g}, {high:g}]"
            raise ValueError(msg)
        return self


class LogUniformDraw(_Model):
    """A float whose logarithm is uniform between the logarithms of the bounds."""

    loguniform: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]

    @model_validator(mode="after")
    def _ordered(self) -> LogUniformDraw:
        low, high = self.loguniform
        if high <= low:
            msg = f"bounds [low, high] with high > low; got [{low:g}, {high:g}]"
            raise ValueError(msg)
        return self


class IntegersDraw(_Model):
    """An integer drawn uniformly from the bounds, both included."""

    integers: tuple[int, int]

    @model_validator(mode="after")
    def _ordered(self) -> IntegersDraw:
        low, high = self.integers
        if high < low:
            msg = f"bounds [low, high] with high >= low; got [{low}, {high}]"
            raise ValueError(msg)
        return self


class ChoiceDraw(_Model):
    """One of the listed values, each equally likely."""

    choice: Annotated[list[Any], Field(min_length=1)]


Draw = UniformDraw | LogUniformDraw | IntegersDraw | ChoiceDraw
Values = Annotated[list[Any], Field(min_length=1)]


class RandomBlock(_Model):
    """`samples` rows of values drawn with the sweep's seed."""

    samples: Annotated[int, Field(gt=0)]
    parameters: Annotated[dict[str, Draw], Field(min_length=1)]


class SweepFile(_Model):
    """A sweep file as written (see :mod:`sim.sweep` for the format)."""

    name: str | None = None
    description: str | None = None
    scenario: str
    replications: Annotated[int, Field(gt=0)] = 1
    seed: int = 0
    set: dict[str, Any] = {}
    grid: dict[str, Values] = {}
    zip: dict[str, Values] = {}
    random: RandomBlock | None = None


# --- what a sweep is made of -----------------------------------------------------


@dataclass(frozen=True)
class Base:
    """The base scenario and its topology as plain data, and where they live.

    This is what every worker receives once; each run applies its point's
    values to a copy.
    """

    scenario_path: Path
    topology_path: Path
    scenario: dict[str, Any]
    topology: dict[str, Any]


@dataclass(frozen=True)
class Parameter:
    """A path into the base scenario or topology that a sweep sets.

    Attributes
    ----------
    name
        The path as written in the sweep file, e.g. ``classes[chat].slo_ms``.
    target
        Which document the path points into.
    path
        The same path with list items as indices: ``("classes", 1, "slo_ms")``.
    where
        Where the parameter is written in the sweep file.
    """

    name: str
    target: Target
    path: Path_
    where: Path_

    @property
    def field(self) -> str:
        """The path as the scenario's own problems write it."""
        return format_path(self.path)


@dataclass(frozen=True)
class Point:
    """One combination of values: one per varying parameter of the sweep.

    ``sources[i]`` is where ``values[i]`` is written in the sweep file (the
    list item of a grid or zip value, or the random block's parameter).
    """

    index: int
    values: tuple[Any, ...]
    sources: tuple[Path_, ...]


Assignment = tuple[Target, Path_, Any]
"""A value to write at a path of the scenario or of the topology."""


@dataclass(frozen=True)
class Sweep:
    """A checked sweep file, expanded into its points.

    Attributes
    ----------
    file
        The sweep file.
    name
        Its `name`, or the file's stem.
    doc
        The sweep file with the position of every key and value.
    base
        The base scenario and topology as data.
    scenario_doc, topology_doc
        The base files with positions, to locate problems found in them.
    fixed
        Parameters of the `set` block with their value.
    parameters
        The varying parameters, in column order: grid, zip, then random.
    points
        Every point, in the order they are numbered and run.
    replications
        Runs per point.
    """

    file: Path
    name: str
    doc: LocatedYaml
    base: Base
    scenario_doc: LocatedYaml
    topology_doc: LocatedYaml
    fixed: tuple[tuple[Parameter, Any], ...]
    parameters: tuple[Parameter, ...]
    points: tuple[Point, ...]
    replications: int

    def assignments(self, point: Point) -> tuple[Assignment, ...]:
        """The values a point writes into the scenario and topology, in order."""
        fixed = [(p.target, p.path, value) for p, value in self.fixed]
        varying = [
            (p.target, p.path, value)
            for p, value in zip(self.parameters, point.values, strict=True)
        ]
        return (*fixed, *varying)

    def run_seed(self, point: Point, replication: int) -> int | None:
        """The scenario seed of one run: the point's seed plus the replication.

        The point's seed is the base scenario's `seed` unless the sweep sets
        one. None when that value is not an integer (the point is invalid).
        """
        seed: Any = self.base.scenario.get("seed", 0)
        for target, path, value in self.assignments(point):
            if target == "scenario" and path == ("seed",):
                seed = value
        if isinstance(seed, bool) or not isinstance(seed, int):
            return None
        return seed + replication


# --- loading -------------------------------------------------------------------


def read_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read and check a sweep file, and expand it into points.

    The base scenario is loaded with the normal validation; every parameter
    path must lead somewhere in it or in its topology. The points themselves
    are not validated here (see :func:`sim.sweep.load_sweep`).

    Parameters
    ----------
    path
        The sweep file; its `scenario` is relative to its folder.

    Returns
    -------
    Sweep
        The checked sweep with its points in run order.

    Raises
    ------
    sim.errors.InputError
        With every problem of the sweep file, each located in it; or the
        problems of the base scenario.

    Examples
    --------
    >>> sweep = read_sweep("scenarios/sweep_three_tier.yaml")  # doctest: +SKIP
    >>> len(sweep.points), sweep.replications  # doctest: +SKIP
    (12, 3)
    """
    doc = load_yaml(path)
    spec = validate_doc(doc, SweepFile)
    base, scenario_doc, topology_doc = _load_base(doc, spec, Path(path))

    problems: list[Problem] = []
    fixed = _parameters(doc, spec.set, ("set",), base, problems)
    grid = _parameters(doc, spec.grid, ("grid",), base, problems)
    zipped = _parameters(doc, spec.zip, ("zip",), base, problems)
    drawn = _parameters(
        doc,
        spec.random.parameters if spec.random else {},
        ("random", "parameters"),
        base,
        problems,
    )
    every = [*fixed, *grid, *zipped, *drawn]
    problems += _overlaps(doc, every) + _zip_lengths(doc, spec)
    if problems:
        raise InputError(problems)

    return Sweep(
        file=Path(path),
        name=spec.name or Path(path).stem,
        doc=doc,
        base=base,
        scenario_doc=scenario_doc,
        topology_doc=topology_doc,
        fixed=tuple((p, spec.set[p.name]) for p in fixed),
        parameters=(*grid, *zipped, *drawn),
        points=_expand(spec, grid, zipped, drawn),
        replications=spec.replications,
    )


def _load_base(
    doc: LocatedYaml, spec: SweepFile, sweep_path: Path
) -> tuple[Base, LocatedYaml, LocatedYaml]:
    """Load the base scenario with its normal validation, then as plain data."""
    scenario_path = sweep_path.parent / spec.scenario
    if not scenario_path.is_file():
        found = f"{spec.scenario!r}, which does not exist"
        expected = "a scenario file (relative to the sweep file)"
        raise InputError([doc.problem(("scenario",), expected, found)])

    loaded = load_scenario(scenario_path)
    scenario_doc = load_yaml(scenario_path)
    topology_doc = load_yaml(
        loaded.topology_path, display_name=_display(loaded.topology_path)
    )
    base = Base(
        scenario_path=loaded.scenario_path,
        topology_path=loaded.topology_path,
        scenario=scenario_doc.data,
        topology=topology_doc.data,
    )
    return base, scenario_doc, topology_doc


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def is_sweep_file(path: str | os.PathLike[str]) -> bool:
    """Tell whether a YAML file is a sweep file: a `scenario` key, no `classes`.

    A file that cannot be read or parsed is not a sweep file; checking it as a
    scenario or topology then reports why.

    Examples
    --------
    >>> is_sweep_file("scenarios/sweep_three_tier.yaml")  # doctest: +SKIP
    True
    """
    try:
        data = load_yaml(path).data
    except InputError:
        return False
    return isinstance(data, dict) and "scenario" in data and "classes" not in data


# --- parameter paths -------------------------------------------------------------


def parse_path(text: str) -> list[tuple[Literal["key", "item"], str]]:
    """Split a parameter path into keys and ``[selector]`` items.

    Parameters
    ----------
    text
        A path such as ``classes[chat].arrival.rate_per_s``.

    Returns
    -------
    list of (kind, text)
        ``("key", name)`` for a dotted key, ``("item", selector)`` for brackets.

    Raises
    ------
    ValueError
        When the text is not a path.

    Examples
    --------
    >>> parse_path("classes[chat].arrival.rate_per_s")
    [('key', 'classes'), ('item', 'chat'), ('key', 'arrival'), ('key', 'rate_per_s')]
    """
    first = _FIRST_KEY.match(text)
    if first is None:
        msg = "a path that starts with a key"
        raise ValueError(msg)
    parts: list[tuple[Literal["key", "item"], str]] = [("key", first.group())]
    position = first.end()
    while position < len(text):
        token = _TOKEN.match(text, position)
        if token is None:
            msg = f"a path of keys and [items]; stuck at character {position + 1}"
            raise ValueError(msg)
        key, item = token.groups()
        parts.append(("key", key) if key is not None else ("item", item.strip()))
        position = token.end()
    return parts


class _PathError(Exception):
    """A parameter path that leads nowhere: what was expected, what was found."""

    def __init__(self, expected: str, found: str, suggestion: str | None = None):
        super().__init__(expected)
        self.expected, self.found, self.suggestion = expected, found, suggestion


def _parameters(
    doc: LocatedYaml,
    block: dict[str, Any],
    where: Path_,
    base: Base,
    problems: list[Problem],
) -> list[Parameter]:
    """Resolve every path of one block, adding a problem for each bad one."""
    parameters = []
    for name in block:
        key_where = (*where, name)
        try:
            target, path = _resolve(name, base)
        except _PathError as err:
            problems.append(
                doc.problem(
                    key_where, err.expected, err.found, err.suggestion, key=True
                )
            )
            continue
        parameters.append(Parameter(name, target, path, key_where))
    return parameters


def _resolve(name: str, base: Base) -> tuple[Target, Path_]:
    """Follow a parameter path through the base data; return it with indices."""
    if not isinstance(name, str):
        msg = "a path such as classes[chat].arrival.rate_per_s"
        raise _PathError(msg, repr(name))
    try:
        parts = parse_path(name)
    except ValueError as err:
        raise _PathError(str(err), repr(name)) from None

    target: Target = "scenario"
    data: Any = base.scenario
    skip = 0
    if parts[0] == ("key", "topology") and len(parts) > 1:
        target, data, skip = "topology", base.topology, 1

    path: list[str | int] = []
    for number in range(skip, len(parts)):
        kind, text = parts[number]
        here = _written(parts[:number]) or f"the {target}"
        step, data = _step(data, kind, text, number == len(parts) - 1, here)
        path.append(step)
    return target, tuple(path)


def _written(parts: list[tuple[Literal["key", "item"], str]]) -> str:
    """Part of a parameter path as the user wrote it."""
    text = ""
    for kind, part in parts:
        text += f"[{part}]" if kind == "item" else f".{part}" if text else part
    return text


def _step(
    data: Any, kind: str, text: str, last: bool, here: str
) -> tuple[str | int, Any]:
    """Take one step of a path; a missing last key may be added by the sweep."""
    if isinstance(data, dict):
        if text in data:
            return text, data[text]
        if last:
            return text, None
        keys = sorted(str(k) for k in data)
        msg = f"a key of {here} ({_listed(keys)})"
        raise _PathError(msg, repr(text), closest(text, keys))
    if isinstance(data, list):
        return _item(data, kind, text, here)
    msg = f"a mapping or a list at {here} to look up {text!r} in"
    raise _PathError(msg, describe_value(data))


def _item(data: list[Any], kind: str, text: str, here: str) -> tuple[int, Any]:
    names = [
        str(item["name"]) for item in data if isinstance(item, dict) and "name" in item
    ]
    if kind == "key":
        msg = f"[name] or [index] to pick an item of the list {here}"
        raise _PathError(msg, f".{text}")
    if text.isdigit():
        index = int(text)
        if index < len(data):
            return index, data[index]
        msg = f"an index below {len(data)} in {here}"
        raise _PathError(msg, text)
    for index, item in enumerate(data):
        if isinstance(item, dict) and item.get("name") == text:
            return index, item
    msg = f"the name of an item of {here} ({_listed(names)})"
    raise _PathError(msg, repr(text), closest(text, names))


def _listed(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 12 else f"{len(names)} names"


def _overlaps(doc: LocatedYaml, parameters: list[Parameter]) -> list[Problem]:
    """Each field is set by one parameter; `topology` and `topology.*` exclude."""
    problems = []
    for i, later in enumerate(parameters):
        for earlier in parameters[:i]:
            clash = _clash(earlier, later)
            if clash is not None:
                problems.append(doc.problem(later.where, clash, "both", key=True))
                break
    return problems


def _clash(earlier: Parameter, later: Parameter) -> str | None:
    switches_file = ("scenario", ("topology",))
    pair = {(earlier.target, earlier.path[:1]), (later.target, later.path[:1])}
    if switches_file in pair and any(p.target == "topology" for p in (earlier, later)):
        return (
            f"either a topology file or topology.* paths, not both "
            f"(see {format_path(earlier.where)})"
        )
    if earlier.target != later.target:
        return None
    shorter, longer = sorted((earlier.path, later.path), key=len)
    if longer[: len(shorter)] != shorter:
        return None
    return f"a field no other parameter sets (see {format_path(earlier.where)})"


def _zip_lengths(doc: LocatedYaml, spec: SweepFile) -> list[Problem]:
    lengths = {name: len(values) for name, values in spec.zip.items()}
    if len(set(lengths.values())) <= 1:
        return []
    first, count = next(iter(lengths.items()))
    return [
        doc.problem(
            ("zip", name),
            f"{count} values, as many as {first}",
            f"{length}",
        )
        for name, length in lengths.items()
        if length != count
    ]


# --- expansion -----------------------------------------------------------------

_Row = tuple[tuple[Any, Path_], ...]


def _expand(
    spec: SweepFile,
    grid: list[Parameter],
    zipped: list[Parameter],
    drawn: list[Parameter],
) -> tuple[Point, ...]:
    """Every grid combination, times every zip row, times every random sample."""
    blocks = [
        _grid_rows(spec, grid),
        _zip_rows(spec, zipped),
        _random_rows(spec, drawn),
    ]
    points = []
    for index, rows in enumerate(itertools.product(*blocks)):
        cells = [cell for row in rows for cell in row]
        values = tuple(value for value, _ in cells)
        points.append(Point(index, values, tuple(where for _, where in cells)))
    return tuple(points)


def _grid_rows(spec: SweepFile, grid: list[Parameter]) -> list[_Row]:
    # The last parameter changes fastest, as in nested loops written in order.
    axes = [
        [(value, (*p.where, i)) for i, value in enumerate(spec.grid[p.name])]
        for p in grid
    ]
    return [tuple(row) for row in itertools.product(*axes)]


def _zip_rows(spec: SweepFile, zipped: list[Parameter]) -> list[_Row]:
    if not zipped:
        return [()]
    count = len(spec.zip[zipped[0].name])
    return [
        tuple((spec.zip[p.name][i], (*p.where, i)) for p in zipped)
        for i in range(count)
    ]


def _random_rows(spec: SweepFile, drawn: list[Parameter]) -> list[_Row]:
    if spec.random is None or not drawn:
        return [()]
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed))
    draws = spec.random.parameters
    return [
        tuple((_draw(draws[p.name], rng), p.where) for p in drawn)
        for _ in range(spec.random.samples)
    ]


def _draw(draw: Draw, rng: np.random.Generator) -> Any:
    """One value, as a plain Python number or the listed value itself."""
    if isinstance(draw, UniformDraw):
        return float(rng.uniform(*draw.uniform))
    if isinstance(draw, LogUniformDraw):
        low, high = draw.loguniform
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if isinstance(draw, IntegersDraw):
        return int(rng.integers(*draw.integers, endpoint=True))
    return draw.choice[int(rng.integers(len(draw.choice)))]
