"""Errors placesim shows to a user, and the one shape every input problem takes.

Every bad input is reported as a :class:`Problem`: where it is (file, line,
column), which field, what was expected, what was found and, when a valid name
is close to the one written, a suggestion. An :class:`InputError` carries all the
problems found at once, so a user fixes a file in one pass instead of one error
per run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["InputError", "PlacesimError", "Problem", "closest", "merge"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located where the user can find it.

    Attributes
    ----------
    file : str
        The path as the user gave it.
    line, column : int or None
        1-based position of the offending node; None when unknown.
    field : str
        The YAML path as the user writes it (``classes[0].arrival.rate_per_s``);
        empty when the problem concerns the whole file.
    expected : str
        What would have been accepted, e.g. ``a number > 0``.
    found : str
        What was there instead, e.g. ``-3``.
    suggestion : str or None
        The closest valid name, when one is close enough to be a likely typo.

    Examples
    --------
    >>> problem = Problem("a.yaml", 14, 9, "tier", "'edge' or 'cloud'", "'edg'", "edge")
    >>> print(problem)
    a.yaml:14:9: tier: expected 'edge' or 'cloud'; got 'edg'. Did you mean 'edge'?
    """

    file: str
    line: int | None
    column: int | None
    field: str
    expected: str
    found: str
    suggestion: str | None = None

    def __str__(self) -> str:
        """Render as ``file:line:column: field: expected X; got Y``."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"

        text = f"{where}: "
        if self.field:
            text += f"{self.field}: "
        text += f"expected {self.expected}; got {self.found}"

        if self.suggestion is not None:
            text += f". Did you mean '{self.suggestion}'?"
        return text


class PlacesimError(Exception):
    """Base of every error placesim shows to a user."""


class InputError(PlacesimError):
    """One or more problems in the user's input files, all reported together.

    Parameters
    ----------
    problems : sequence of Problem
        At least one problem.

    Raises
    ------
    ValueError
        If `problems` is empty: an input error with nothing wrong is a bug.

    Examples
    --------
    >>> err = InputError([Problem("a.yaml", 3, 1, "seed", "an integer", "'x'")])
    >>> print(err)
    a.yaml: 1 problem
      a.yaml:3:1: seed: expected an integer; got 'x'
    """

    problems: tuple[Problem, ...]

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            msg = "an InputError needs at least one problem"
            raise ValueError(msg)

        # Passing the tuple on keeps the error picklable (sweep workers send it back).
        self.problems = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        """Return :meth:`format`."""
        return self.format()

    def format(self) -> str:
        """Render a header line, then every problem grouped by file and line.

        Returns
        -------
        str
            ``<file>: N problems`` (or ``N problems in M files``) followed by one
            indented line per problem. Files keep their first-seen order; within a
            file, problems are sorted by line and column.
        """
        by_file: dict[str, list[Problem]] = {}
        for problem in self.problems:
            by_file.setdefault(problem.file, []).append(problem)

        lines = [_header(len(self.problems), list(by_file))]
        for problems in by_file.values():
            problems.sort(key=_position)
            lines.extend(f"  {problem}" for problem in problems)
        return "\n".join(lines)


def _header(count: int, files: list[str]) -> str:
    noun = "problem" if count == 1 else "problems"
    if len(files) == 1:
        return f"{files[0]}: {count} {noun}"
    return f"{count} {noun} in {len(files)} files"


def _position(problem: Problem) -> tuple[int, int]:
    # Whole-file problems (no line) come first.
    return (problem.line or 0, problem.column or 0)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate most similar to `name`, or None if none is close.

    Parameters
    ----------
    name : str
        What the user wrote.
    candidates : iterable of str
        The valid names.

    Returns
    -------
    str or None
        The best match with a similarity ratio of at least 0.6.

    Examples
    --------
    >>> closest("edg", ["edge", "region", "cloud"])
    'edge'
    >>> closest("xyz", ["edge", "region", "cloud"]) is None
    True
    """
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def merge(errors: Iterable[InputError]) -> InputError:
    """Combine several input errors into one that lists all their problems.

    Parameters
    ----------
    errors : iterable of InputError
        Errors found in one or more files.

    Returns
    -------
    InputError
        The problems of every error, in order.

    Raises
    ------
    ValueError
        If `errors` is empty.

    Examples
    --------
    >>> a = InputError([Problem("a.yaml", 1, 1, "x", "an integer", "'1'")])
    >>> b = InputError([Problem("b.yaml", 2, 1, "y", "a string", "3")])
    >>> print(merge([a, b]).format().splitlines()[0])
    2 problems in 2 files
    """
    problems = [problem for error in errors for problem in error.problems]
    return InputError(problems)
