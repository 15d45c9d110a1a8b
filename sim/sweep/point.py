"""One point of a sweep: its scenario built from the base, validated and run.

The same functions run in a Ray worker, in the driver (``--serial``) and in
tests; nothing here imports Ray.

A point's scenario goes through the normal validation of
:func:`sim.schema.load_scenario`: its scenario (and, when the sweep changes
the topology, its topology) is written to a temporary folder with every file
it names (``topology``, ``catalog`` and each ``file`` key) made absolute
against the base scenario's folder, so traces and catalogues keep resolving
from where the base scenario lives. Problems found there are then located in
the sweep file, at the value that caused them, by :func:`locate_problems`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from sim.api import run
from sim.errors import InputError, PlacesimError, Problem
from sim.schema import LoadedScenario, load_scenario, with_overrides
from sim.sweep.spec import Assignment, Base, Point, Sweep, read_sweep
from sim.yamlio import LocatedYaml, Path_, format_path

__all__ = [
    "InvalidPoint",
    "Outcome",
    "Unit",
    "apply",
    "load_point",
    "load_sweep",
    "locate_problems",
    "run_unit",
    "run_units",
]

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_PACKAGE = Path(__file__).resolve().parent.parent
_FILE_KEYS = ("topology", "catalog")
"""Scenario keys that name a file; any key named `file` does too."""


@dataclass(frozen=True)
class Unit:
    """One run: a point, a replication, its seed and the values to apply."""

    point: int
    replication: int
    seed: int | None
    assignments: tuple[Assignment, ...]
    ledger_dir: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one run gave: its summary, or why it has none.

    Attributes
    ----------
    kind
        None for a run that worked; ``"invalid"`` when the point's scenario
        failed validation (see `problems`); ``"error"`` when the run raised;
        ``"lost"`` when its Ray task died more times than it was retried.
    problems
        For an invalid point: each problem with the document it was found in
        (``"scenario"``, ``"topology"``, or ``"file"`` for any other file).
    """

    point: int
    replication: int
    summary: pl.DataFrame | None = None
    kind: str | None = None
    error: str | None = None
    problems: tuple[tuple[str, Problem], ...] = ()
    elapsed_s: float = 0.0


class InvalidPoint(PlacesimError):
    """A point whose values make the scenario invalid.

    Parameters
    ----------
    problems
        Each problem with the document it was found in.
    """

    def __init__(self, problems: Sequence[tuple[str, Problem]]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        """List the problems, one a line."""
        return "\n".join(str(problem) for _, problem in self.problems)


# --- building and validating a point ---------------------------------------------


def apply(
    base: Base, assignments: Sequence[Assignment]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Copy the base scenario (and topology, if touched) with the values set.

    Parameters
    ----------
    base
        The base scenario and topology as data.
    assignments
        ``(target, path, value)`` triples, applied in order.

    Returns
    -------
    tuple
        The scenario data, and the topology data or None when no value
        touches the topology.

    Examples
    --------
    >>> base = Base(Path("s.yaml"), Path("t.yaml"), {"seed": 1}, {})
    >>> apply(base, [("scenario", ("seed",), 7)])
    ({'seed': 7}, None)
    """
    scenario = copy.deepcopy(base.scenario)
    touched = any(target == "topology" for target, _, _ in assignments)
    topology = copy.deepcopy(base.topology) if touched else None
    for target, path, value in assignments:
        document = scenario if target == "scenario" else topology
        _set(document, path, copy.deepcopy(value))
    return scenario, topology


def _set(data: Any, path: Path_, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def load_point(base: Base, assignments: Sequence[Assignment]) -> LoadedScenario:
    """Build a point's scenario and validate it like any scenario file.

    Parameters
    ----------
    base
        The base scenario and topology as data.
    assignments
        The point's values.

    Returns
    -------
    LoadedScenario
        Validated, with paths resolving from the base scenario's folder.

    Raises
    ------
    InvalidPoint
        With every problem the validation found.

    Examples
    --------
    >>> loaded = load_point(sweep.base, sweep.assignments(point))  # doctest: +SKIP
    """
    scenario, topology = apply(base, assignments)
    chosen_topology = scenario.get("topology")
    folder = base.scenario_path.parent
    with tempfile.TemporaryDirectory(prefix="placesim-point-") as temp:
        files = {"scenario": Path(temp) / "scenario.yaml"}
        if topology is not None:
            files["topology"] = Path(temp) / "topology.yaml"
            _dump(_absolute(topology, folder), files["topology"])
            scenario["topology"] = str(files["topology"])
        _dump(_absolute(scenario, folder, _FILE_KEYS), files["scenario"])
        try:
            loaded = load_scenario(files["scenario"])
        except InputError as err:
            raise InvalidPoint([(_role(p, files), p) for p in err.problems]) from None

    return dataclasses.replace(
        loaded,
        scenario=loaded.scenario.model_copy(update={"topology": chosen_topology}),
        scenario_path=base.scenario_path,
        topology_path=base.topology_path if topology else loaded.topology_path,
    )


def _absolute(data: Any, folder: Path, keys: Sequence[str] = ()) -> Any:
    """A copy of `data` with relative file names made absolute against `folder`."""
    if isinstance(data, list):
        return [_absolute(item, folder) for item in data]
    if not isinstance(data, dict):
        return data
    result = {}
    for key, value in data.items():
        if (key == "file" or key in keys) and isinstance(value, str):
            result[key] = str((folder / value).resolve())
        else:
            result[key] = _absolute(value, folder)
    return result


def _dump(data: Any, path: Path) -> None:
    path.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False))


def _role(problem: Problem, files: dict[str, Path]) -> str:
    found = Path(problem.file).resolve()
    for role, path in files.items():
        if found == path.resolve():
            return role
    return "file"


# --- running ---------------------------------------------------------------------


def run_units(base: Base, units: Sequence[Unit]) -> list[Outcome]:
    """Run several units one after another: the body of a sweep's Ray task.

    Examples
    --------
    >>> outcomes = run_units(sweep.base, units)  # doctest: +SKIP
    """
    return [run_unit(base, unit) for unit in units]


def run_unit(base: Base, unit: Unit) -> Outcome:
    """Validate and simulate one run; never raises for a bad point.

    Parameters
    ----------
    base
        The base scenario and topology as data.
    unit
        The run: its point's values, seed and where to keep its ledger.

    Returns
    -------
    Outcome
        The run's summary, or the reason it has none.

    Examples
    --------
    >>> outcome = run_unit(sweep.base, unit)  # doctest: +SKIP
    >>> outcome.summary.filter(scope="overall")  # doctest: +SKIP
    """
    started = time.perf_counter()
    point, replication = unit.point, unit.replication
    try:
        loaded = load_point(base, unit.assignments)
        if unit.seed is not None:
            loaded = with_overrides(loaded, seed=unit.seed)
        summary = _simulate(loaded, unit.ledger_dir)
    except InvalidPoint as err:
        elapsed = time.perf_counter() - started
        return Outcome(
            point, replication, kind="invalid", problems=err.problems, elapsed_s=elapsed
        )
    except Exception as err:  # one failed run must not end the sweep
        elapsed = time.perf_counter() - started
        error = describe_error(err)
        return Outcome(point, replication, kind="error", error=error, elapsed_s=elapsed)
    elapsed = time.perf_counter() - started
    return Outcome(point, replication, summary=summary, elapsed_s=elapsed)


def _simulate(loaded: LoadedScenario, ledger_dir: str | None) -> pl.DataFrame:
    if ledger_dir is not None:
        return run(loaded, out_dir=ledger_dir).summary
    with tempfile.TemporaryDirectory(prefix="placesim-run-") as folder:
        return run(loaded, out_dir=folder).summary


def describe_error(err: BaseException) -> str:
    """One line: the exception, its message and the line of placesim that failed.

    Examples
    --------
    >>> describe_error(ValueError("bad value"))
    'ValueError: bad value'
    """
    text = "".join(traceback.format_exception_only(err)).strip().replace("\n", " ")
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_PACKAGE)]
    if ours or frames:
        last = (ours or frames)[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return text


# --- locating problems in the sweep file -----------------------------------------


def locate_problems(
    sweep: Sweep, point: Point, problems: Sequence[tuple[str, Problem]]
) -> list[Problem]:
    """Move a point's problems to where the user can fix them.

    A problem in a field that a sweep parameter sets is located at the value
    in the sweep file; any other problem is located in the base scenario or
    topology. Either way, the text found ends with the point's number.

    Parameters
    ----------
    sweep
        The sweep the point belongs to.
    point
        The invalid point.
    problems
        Its problems, as :class:`InvalidPoint` carries them.

    Returns
    -------
    list of Problem

    Examples
    --------
    >>> located = locate_problems(sweep, point, err.problems)  # doctest: +SKIP
    """
    setters = [(p, p.where) for p, _ in sweep.fixed]
    setters += list(zip(sweep.parameters, point.sources, strict=True))
    located = []
    for role, problem in problems:
        found = f"{problem.found} (point {point.index})"
        matches = [
            (parameter, where)
            for parameter, where in setters
            if parameter.target == role and _within(problem.field, parameter.field)
        ]
        if matches:
            _, where = max(matches, key=lambda match: len(match[0].path))
            located.append(
                sweep.doc.problem(where, problem.expected, found, problem.suggestion)
            )
        elif role in ("scenario", "topology"):
            doc = sweep.scenario_doc if role == "scenario" else sweep.topology_doc
            line, column = doc.locate(_deepest(problem.field, doc))
            located.append(
                dataclasses.replace(
                    problem, file=doc.file, line=line, column=column, found=found
                )
            )
        else:
            located.append(dataclasses.replace(problem, found=found))
    return located


def _within(field: str, parameter: str) -> bool:
    return field == parameter or field.startswith((f"{parameter}.", f"{parameter}["))


def _deepest(field: str, doc: LocatedYaml) -> Path_:
    """The path of the deepest node of `doc` that `field` names or lies under."""
    by_text = {format_path(path): path for path in doc.value_positions}
    while field and field not in by_text:
        cut = max(field.rfind("."), field.rfind("["))
        field = field[: max(cut, 0)]
    return by_text.get(field, ())


# --- the sweep, checked -----------------------------------------------------------


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read a sweep file, check it and validate its first point in full.

    Every other point is validated when it runs: a point whose values make
    the scenario invalid is recorded as a failed run, located in the sweep
    file, and the sweep goes on. Validating point 0 here catches at once a
    mistake that every point shares.

    Parameters
    ----------
    path
        The sweep file.

    Returns
    -------
    Sweep

    Raises
    ------
    sim.errors.InputError
        With every problem, located in the sweep file or the base scenario.

    Examples
    --------
    >>> sweep = load_sweep("scenarios/sweep_three_tier.yaml")  # doctest: +SKIP
    >>> len(sweep.points), sweep.replications  # doctest: +SKIP
    (12, 3)
    """
    sweep = read_sweep(path)
    first = sweep.points[0]
    try:
        load_point(sweep.base, sweep.assignments(first))
    except InvalidPoint as err:
        raise InputError(locate_problems(sweep, first, err.problems)) from None
    return sweep
