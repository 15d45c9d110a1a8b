"""Load YAML with the line and column of every node, and locate validation errors.

Scenario and topology files are checked in two steps. :func:`load_yaml` reads a
file into plain Python data while remembering where each key and value was
written. :func:`validate` then runs a pydantic model over that data and turns
every pydantic error into a :class:`~sim.errors.Problem` that points at the
offending line and column, in words a person understands.

pydantic reports an error location (``loc``) that mixes YAML keys with its own
markers: the tag of a discriminated union, the names of union members
(``'int'``, ``"literal['unlimited']"``, ``'constrained-float'``) and ``'[key]'``
for dictionary keys. This module walks the model's type annotations alongside
the ``loc`` to recover the path as the user wrote it.
"""

from __future__ import annotations

import collections
import collections.abc
import os
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

import pydantic
import yaml
from pydantic.fields import FieldInfo

from sim.errors import InputError, Problem, closest

__all__ = [
    "LocatedYaml",
    "Path_",
    "describe_value",
    "format_path",
    "load_yaml",
    "validate",
    "validation_problems",
]

Path_ = tuple[str | int, ...]
"""A path into YAML data: mapping keys and list indices, outermost first."""

Position = tuple[int | None, int | None]

M = TypeVar("M", bound=pydantic.BaseModel)

_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_MISSING: Final = object()
_LONGEST_SHOWN: Final = 40


# --- Loading ---------------------------------------------------------------------


@dataclass
class LocatedYaml:
    """Plain data loaded from a YAML file, with where each part was written.

    Attributes
    ----------
    file : str
        The file name used in problems (as the user gave it).
    data : Any
        Plain Python data: dicts, lists, strings, numbers, booleans and None.
    value_positions : dict
        1-based ``(line, column)`` of every value node, by path.
    key_positions : dict
        1-based ``(line, column)`` of every mapping key, by the path of its value.
    """

    file: str
    data: Any
    value_positions: dict[Path_, tuple[int, int]] = field(
        default_factory=dict, repr=False
    )
    key_positions: dict[Path_, tuple[int, int]] = field(
        default_factory=dict, repr=False
    )

    def locate(self, path: Path_, *, key: bool = False) -> Position:
        """Return the 1-based line and column of the node at `path`.

        Parameters
        ----------
        path : tuple of str or int
            Mapping keys and list indices, outermost first.
        key : bool
            Locate the mapping key at the end of `path` instead of its value.

        Returns
        -------
        tuple of (int or None, int or None)
            The position of the node, or of its nearest ancestor that exists
            (useful for missing keys); ``(None, None)`` if nothing is known.

        Examples
        --------
        >>> doc = LocatedYaml("a.yaml", {"a": 1}, {(): (1, 1), ("a",): (1, 4)})
        >>> doc.locate(("a",)), doc.locate(("a", "missing"))
        ((1, 4), (1, 4))
        """
        if key and path in self.key_positions:
            return self.key_positions[path]

        for end in range(len(path), -1, -1):
            position = self.value_positions.get(path[:end])
            if position is not None:
                return position
        return (None, None)

    def problem(
        self,
        path: Path_,
        expected: str,
        found: str,
        suggestion: str | None = None,
        *,
        key: bool = False,
    ) -> Problem:
        """Build a :class:`~sim.errors.Problem` located at `path` in this file.

        Parameters
        ----------
        path : tuple of str or int
            Where the problem is; also shown as the field.
        expected, found : str
            What would have been accepted, and what was there.
        suggestion : str, optional
            The closest valid name.
        key : bool
            Point at the mapping key rather than its value.

        Returns
        -------
        Problem

        Examples
        --------
        >>> doc = LocatedYaml("a.yaml", {"seed": "x"}, {("seed",): (3, 7)})
        >>> print(doc.problem(("seed",), "an integer", "'x'"))
        a.yaml:3:7: seed: expected an integer; got 'x'
        """
        line, column = self.locate(path, key=key)
        return Problem(
            self.file, line, column, format_path(path), expected, found, suggestion
        )


def load_yaml(
    path: str | os.PathLike[str], *, display_name: str | None = None
) -> LocatedYaml:
    """Read a YAML file whose top level is a mapping, keeping node positions.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    display_name : str, optional
        The name used in problems; defaults to `path` as given.

    Returns
    -------
    LocatedYaml
        The data, and the line and column of every key and value.

    Raises
    ------
    InputError
        If the file is missing or unreadable, is not valid YAML, is empty, has a
        top level other than a mapping, or repeats a key within a mapping. All
        repeated keys are reported at once.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "s.yaml").write_text("seed: 7\\nsites:\\n  - edge\\n")
    >>> doc = load_yaml(folder / "s.yaml", display_name="s.yaml")
    >>> doc.data, doc.locate(("sites", 0))
    ({'seed': 7, 'sites': ['edge']}, (3, 5))
    """
    file = os.fspath(path) if display_name is None else display_name
    text = _read(path, file)
    root, loader = _compose(text, file)
    return _Builder(file, loader).document(root)


def _read(path: str | os.PathLike[str], file: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError as err:
        found = "no file at that path"
        raise InputError(
            [Problem(file, None, None, "", "an existing file", found)]
        ) from err
    except IsADirectoryError as err:
        raise InputError([Problem(file, None, None, "", "a file", "a folder")]) from err
    except OSError as err:
        found = (err.strerror or str(err)).lower()
        raise InputError(
            [Problem(file, None, None, "", "a readable file", found)]
        ) from err


def _compose(text: bytes, file: str) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    """Parse `text` into a node tree; the loader is kept to construct scalars."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            return loader.get_single_node(), loader
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise InputError([_syntax_problem(err, text, file)]) from err


def _syntax_problem(err: yaml.YAMLError, text: bytes, file: str) -> Problem:
    if isinstance(err, yaml.reader.ReaderError):
        return _unreadable_problem(err, text, file)

    mark = getattr(err, "problem_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    if context and problem.startswith("but "):
        # "expected a single document in the stream" + "but found another document"
        problem = f"{context} {problem}"
    found = f"a syntax error ({problem})"

    # PyYAML finds an unclosed bracket only where the next key starts; say where
    # the construct it was parsing began, which is where the fix usually goes.
    context_mark = getattr(err, "context_mark", None)
    if context and context.startswith("while parsing") and context_mark is not None:
        found += (
            f" {context} that starts at line {context_mark.line + 1},"
            f" column {context_mark.column + 1}"
        )
    return Problem(file, line, column, "", "valid YAML", found)


def _unreadable_problem(
    err: yaml.reader.ReaderError, text: bytes, file: str
) -> Problem:
    if err.encoding == "unicode":
        # A control character: the position counts characters of the decoded text.
        before = text.decode("utf-8", "replace")[: err.position]
        found = f"the character #x{err.character:02x}, which YAML does not allow"
    else:
        # Undecodable bytes: the position counts bytes.
        before = text[: err.position].decode("utf-8", "replace")
        found = f"bytes that are not {err.encoding} text"

    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    return Problem(file, line, column, "", "valid YAML", found)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turn a composed YAML node tree into plain data, recording positions."""

    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        # Nodes being built right now: an alias to one of them would never end.
        self.open: set[int] = set()

    def document(self, root: yaml.Node | None) -> LocatedYaml:
        if root is None:
            empty = Problem(self.file, None, None, "", "a mapping", "an empty document")
            raise InputError([empty])

        data = self.build(root, ())
        if not isinstance(data, dict):
            self.report(root, (), "a mapping", describe_value(data))

        if self.problems:
            # An anchor merged in several places would repeat its problems.
            unique = {(p.line, p.column, p.expected, p.found): p for p in self.problems}
            raise InputError(list(unique.values()))
        return LocatedYaml(self.file, data, self.values, self.keys)

    def report(self, node: yaml.Node, path: Path_, expected: str, found: str) -> None:
        line, column = _mark(node)
        field_path = format_path(path)
        self.problems.append(
            Problem(self.file, line, column, field_path, expected, found)
        )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.values[path] = _mark(node)
        if id(node) in self.open:
            self.report(node, path, "no alias to itself", "a recursive alias")
            return None

        self.open.add(id(node))
        try:
            return self.build_node(node, path)
        finally:
            self.open.discard(id(node))

    def build_node(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)

        self.report(node, path, "a plain mapping or list", f"the tag {node.tag}")
        return None

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            found = getattr(err, "problem", None) or str(err)
            self.report(node, path, "a plain YAML value", found)
            return None

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merges = [value for key, value in node.value if key.tag == _MERGE_TAG]
        for source in reversed(merges):
            result.update(self.merged(source, path))
        # Building merge sources recorded their position under this path.
        self.values[path] = _mark(node)

        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.key(key_node, path)
            if key in seen:
                found = f"a second {describe_value(key)}"
                self.report(key_node, (*path, key), "each key once", found)
                continue

            seen.add(key)
            self.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result

    def merged(self, node: yaml.Node, path: Path_) -> dict[Any, Any]:
        # `<<: *base` or `<<: [*a, *b]`; earlier mappings in a list win.
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[Any, Any] = {}
        for source in reversed(sources):
            data = self.build(source, path)
            if isinstance(data, dict):
                result.update(data)
            else:
                self.report(source, path, "a mapping to merge", describe_value(data))
        return result

    def key(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)

        kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
        self.report(node, path, "a plain key (text or a number)", kind)
        return None


# --- Showing paths and values ----------------------------------------------------


def format_path(path: Path_) -> str:
    """Write a path the way a user refers to it in YAML.

    Parameters
    ----------
    path : tuple of str or int
        Mapping keys and list indices, outermost first.

    Returns
    -------
    str
        Dotted keys with ``[index]`` for list items; empty for the whole file.

    Examples
    --------
    >>> format_path(("classes", 0, "arrival", "rate_per_s"))
    'classes[0].arrival.rate_per_s'
    >>> format_path(())
    ''
    """
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def describe_value(value: Any) -> str:
    """Show a value found in a file the way a problem reports it.

    Parameters
    ----------
    value : Any
        A value from loaded YAML.

    Returns
    -------
    str
        Strings quoted (long ones shortened), numbers as Python writes them,
        booleans and None in YAML spelling, and containers by their kind.

    Examples
    --------
    >>> [describe_value(v) for v in ["edg", -3, 0.5, True, None, {}, []]]
    ["'edg'", '-3', '0.5', 'true', 'null', 'a mapping', 'a list']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = value if len(value) <= _LONGEST_SHOWN else value[:37] + "..."
        return repr(shown)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


# --- Validating ------------------------------------------------------------------


def validate(doc: LocatedYaml, model: type[M], *, prefix: Path_ = ()) -> M:
    """Validate the data at `prefix` in `doc` with a pydantic `model`.

    Parameters
    ----------
    doc : LocatedYaml
        A loaded file.
    model : type of pydantic.BaseModel
        The schema to apply.
    prefix : tuple of str or int
        Where in the file the model's data lives; the whole file by default.

    Returns
    -------
    pydantic.BaseModel
        The validated instance of `model`.

    Raises
    ------
    InputError
        With one located problem per thing wrong (see
        :func:`validation_problems`).

    Examples
    --------
    >>> class Run(pydantic.BaseModel):
    ...     seed: int
    >>> validate(LocatedYaml("r.yaml", {"seed": 7}), Run)
    Run(seed=7)
    """
    data = _value_at(doc.data, prefix)
    if data is _MISSING:
        problem = doc.problem(prefix[:-1], f"required key '{prefix[-1]}'", "nothing")
        raise InputError([problem])

    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        raise InputError(validation_problems(err, doc, model, prefix=prefix)) from err


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def validation_problems(
    err: pydantic.ValidationError,
    doc: LocatedYaml,
    model: type[pydantic.BaseModel],
    *,
    prefix: Path_ = (),
) -> list[Problem]:
    """Turn every error pydantic found into a located, readable problem.

    Parameters
    ----------
    err : pydantic.ValidationError
        Raised by ``model.model_validate(data)``.
    doc : LocatedYaml
        The file the data came from.
    model : type of pydantic.BaseModel
        The model that was validated; its annotations tell which parts of each
        pydantic ``loc`` are YAML keys and which keys are valid where.
    prefix : tuple of str or int
        Where in `doc` the validated data lives.

    Returns
    -------
    list of Problem
        In pydantic's order, without repeats.

    Notes
    -----
    A plain union such as ``int | Literal['unlimited']`` fails once per member.
    When every member rejects the value as a whole, the failures become one
    problem whose expectations are joined with " or ". When some member accepted
    the value's shape (a mapping for a model member) and failed deeper inside,
    only the deeper failures of one such member are reported: the member with
    the fewest of them, the first one on a tie.

    Custom validators (``field_validator``, ``model_validator``) should raise
    ``ValueError`` whose message says what was expected, without the word
    "expected": ``"a name not starting with 'x'"``. The value found is then
    described automatically. To say what was found yourself, write
    ``"at most 3 classes; got 4"``: the part after ``"; got "`` becomes the
    found text.

    Examples
    --------
    >>> class Run(pydantic.BaseModel):
    ...     seed: int
    >>> doc = LocatedYaml("r.yaml", {"seed": "x"}, {("seed",): (1, 7)})
    >>> try:
    ...     Run.model_validate(doc.data)
    ... except pydantic.ValidationError as err:
    ...     print(validation_problems(err, doc, Run)[0])
    r.yaml:1:7: seed: expected an integer; got 'x'
    """
    errors = err.errors(include_url=False)
    locs = [tuple(error["loc"]) for error in errors]
    spots = [_resolve(model, loc, locs) for loc in locs]

    problems = []
    for slot, members in _slots(spots).items():
        pairs = [(errors[i], spots[i]) for i in members]
        if isinstance(slot, int):
            problems.append(_single_problem(*pairs[0], doc, prefix))
        else:
            problems.append(_union_problem(pairs, doc, prefix))
    return list(dict.fromkeys(problems))


def _slots(spots: list[_Spot]) -> dict[object, list[int]]:
    """Group errors by the problem they become: alone, or with a union's members."""
    best = _best_members(spots)
    slots: dict[object, list[int]] = {}
    for index, spot in enumerate(spots):
        if not spot.follows(best):
            continue

        union = spot.shallow_union()
        if union is None:
            slots[index] = [index]
        elif union not in best:
            slots.setdefault(("union", union), []).append(index)
    return slots


def _best_members(spots: list[_Spot]) -> dict[tuple[Any, ...], Any]:
    """For each union some member failed inside of, pick the member to report.

    The member with the fewest failures inside it is most likely the one meant.
    """
    counts: dict[tuple[Any, ...], dict[Any, int]] = {}
    for spot in spots:
        for union, label in spot.deep_unions():
            labels = counts.setdefault(union, {})
            labels[label] = labels.get(label, 0) + 1
    return {
        union: min(labels, key=labels.__getitem__) for union, labels in counts.items()
    }


# --- Following a pydantic loc through the model's annotations --------------------

_MAPPINGS: Final = frozenset(
    {
        dict,
        collections.OrderedDict,
        collections.defaultdict,
        collections.abc.Mapping,
        collections.abc.MutableMapping,
    }
)
_SEQUENCES: Final = frozenset(
    {
        list,
        tuple,
        set,
        frozenset,
        collections.deque,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.Iterable,
    }
)
_BOUNDS: Final = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


@dataclass
class _Spot:
    """Where a pydantic error points, as found by walking the model's types."""

    path: list[str | int] = field(default_factory=list)
    tp: Any = None
    discriminator: Any = None
    bounds: tuple[str, ...] = ()
    owner: type[pydantic.BaseModel] | None = None
    key: bool = False
    # (loc up to a plain union, len(path) there, member label), outermost first
    unions: list[tuple[tuple[Any, ...], int, Any]] = field(default_factory=list)

    def shallow_union(self) -> tuple[Any, ...] | None:
        """Return the union this error rejects the value of as a whole, if any."""
        if self.unions and self.unions[-1][1] == len(self.path) and not self.key:
            return self.unions[-1][0]
        return None

    def deep_unions(self) -> list[tuple[tuple[Any, ...], Any]]:
        """Return (union, member) for each union this error lies inside a member of."""
        depth = len(self.path) + self.key
        return [(loc, label) for loc, at, label in self.unions if at < depth]

    def follows(self, best: dict[tuple[Any, ...], Any]) -> bool:
        """Tell whether this error goes through the chosen member of every union."""
        return all(best.get(loc, label) == label for loc, _, label in self.unions)


def _resolve(
    model: type[pydantic.BaseModel], loc: tuple[Any, ...], locs: list[tuple[Any, ...]]
) -> _Spot:
    spot = _Spot()
    _settle(spot, model)

    index = 0
    while index < len(loc):
        index = _step(spot, loc, index, locs)
    return spot


def _settle(
    spot: _Spot, tp: Any, discriminator: Any = None, bounds: Iterable[str] = ()
) -> None:
    """Make `tp` the current type, seen through Annotated, None and RootModel."""
    found = list(bounds)
    while True:
        if get_origin(tp) is Annotated:
            tp, *extras = get_args(tp)
            discriminator = _discriminator_in(extras) or discriminator
            found += _bounds_in(extras)
        elif _is_union(tp) and len(_members(tp)) == 1:
            tp = _members(tp)[0]
        elif _is_model(tp) and issubclass(tp, pydantic.RootModel):
            tp = tp.model_fields["root"].annotation
        else:
            break
    spot.tp, spot.discriminator, spot.bounds = tp, discriminator, tuple(found)


def _step(spot: _Spot, loc: tuple[Any, ...], index: int, locs: list[Any]) -> int:
    """Consume loc[index] (and maybe more); return the next index to read."""
    part, tp = loc[index], spot.tp
    spot.owner = None
    if _is_model(tp):
        _into_field(spot, tp, part)
    elif _is_union(tp):
        _into_member(spot, loc, index, locs)
    elif get_origin(tp) in _MAPPINGS:
        return _into_mapping(spot, loc, index)
    elif get_origin(tp) in _SEQUENCES:
        _into_item(spot, part)
    elif part == "[key]":
        spot.key = True
    else:
        spot.path.append(part)
        _settle(spot, None)
    return index + 1


def _into_field(spot: _Spot, model: type[pydantic.BaseModel], part: Any) -> None:
    spot.path.append(part)
    spot.owner = model
    info = _fields_by_key(model).get(part) or model.model_fields.get(part)
    if info is None:
        _settle(spot, None)
    else:
        # A Discriminator object stays in the metadata; a name moves to the field.
        discriminator = info.discriminator or _discriminator_in(info.metadata)
        _settle(spot, info.annotation, discriminator, _bounds_in(info.metadata))


def _into_member(
    spot: _Spot, loc: tuple[Any, ...], index: int, locs: list[Any]
) -> None:
    members = _members(spot.tp)
    if spot.discriminator is not None:
        # pydantic puts the tag in loc: ('arrival', 'poisson', 'rate_per_s').
        name = _discriminator_name(spot.discriminator)
        matching = [m for m in members if str(loc[index]) in _tags_of(m, name)]
    else:
        spot.unions.append((loc[:index], len(spot.path), loc[index]))
        matching = [_member_by_label(members, loc, index, locs)]
    _settle(spot, matching[0] if matching else None)


def _member_by_label(
    members: list[Any], loc: tuple[Any, ...], index: int, locs: list[Any]
) -> Any:
    """Find the union member that pydantic named loc[index].

    pydantic tries members in order and labels each one's errors, so the labels
    seen under one union, in first-seen order, line up with its members.
    """
    prefix = loc[:index]
    labels = [x[index] for x in locs if len(x) > index and x[:index] == prefix]
    labels = list(dict.fromkeys(labels))
    if len(labels) == len(members):
        return members[labels.index(loc[index])]

    for member in members:
        if getattr(_strip_annotated(member), "__name__", None) == loc[index]:
            return member
    return None


def _into_mapping(spot: _Spot, loc: tuple[Any, ...], index: int) -> int:
    key_type, value_type = (*get_args(spot.tp), Any, Any)[:2]
    spot.path.append(loc[index])
    if index + 1 < len(loc) and loc[index + 1] == "[key]":
        spot.key = True
        _settle(spot, key_type)
        return index + 2

    _settle(spot, value_type)
    return index + 1


def _into_item(spot: _Spot, part: Any) -> None:
    args = [arg for arg in get_args(spot.tp) if arg is not Ellipsis]
    fixed = get_origin(spot.tp) is tuple and Ellipsis not in get_args(spot.tp)
    position = part if fixed and isinstance(part, int) and part < len(args) else 0
    spot.path.append(part)
    _settle(spot, args[position] if args else None)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _members(tp: Any) -> list[Any]:
    return [member for member in get_args(tp) if member is not type(None)]


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _fields_by_key(model: type[pydantic.BaseModel]) -> dict[str, FieldInfo]:
    """Map each key a user writes (the alias, else the name) to its field."""
    keys = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        alias = alias if isinstance(alias, str) else info.alias
        keys[alias or name] = info
    return keys


def _discriminator_in(extras: Iterable[Any]) -> Any:
    for extra in extras:
        if isinstance(extra, FieldInfo) and extra.discriminator is not None:
            return extra.discriminator
        if isinstance(extra, pydantic.Discriminator):
            return extra
    return None


def _discriminator_name(discriminator: Any) -> str | None:
    if isinstance(discriminator, pydantic.Discriminator):
        discriminator = discriminator.discriminator
    return discriminator if isinstance(discriminator, str) else None


def _tags_of(member: Any, discriminator: str | None) -> list[str]:
    """Return the tag values that select `member` of a discriminated union."""
    if get_origin(member) is Annotated:
        for extra in get_args(member)[1:]:
            if isinstance(extra, pydantic.Tag):
                return [extra.tag]

    model = _strip_annotated(member)
    if discriminator is None or not _is_model(model):
        return []
    info = _fields_by_key(model).get(discriminator)
    literal = _strip_annotated(info.annotation) if info else None
    return [str(_plain(v)) for v in get_args(literal)] if literal else []


def _bounds_in(metadata: Iterable[Any]) -> list[str]:
    """Read numeric limits (gt, ge, lt, le) from Annotated or Field metadata."""
    found = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            found += _bounds_in(item.metadata)
            continue
        for attribute, symbol in _BOUNDS:
            limit = getattr(item, attribute, None)
            if isinstance(limit, int | float) and not isinstance(limit, bool):
                found.append(f"{symbol} {_number(limit)}")
    return found


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- Explaining each pydantic error ----------------------------------------------


@dataclass(frozen=True)
class _Finding:
    path: tuple[Any, ...]
    expected: str
    found: str
    suggestion: str | None = None
    key: bool = False


_Error = Mapping[str, Any]

_SIMPLE: Final = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_parsing_size": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "iterable_type": "a list",
    "none_required": "null",
}


def _single_problem(
    error: _Error, spot: _Spot, doc: LocatedYaml, prefix: Path_
) -> Problem:
    finding = _explain(error, spot)
    path = (*prefix, *finding.path)
    return doc.problem(
        path, finding.expected, finding.found, finding.suggestion, key=finding.key
    )


def _union_problem(
    pairs: Sequence[tuple[_Error, _Spot]], doc: LocatedYaml, prefix: Path_
) -> Problem:
    findings = [_explain(error, spot) for error, spot in pairs]
    expected = " or ".join(dict.fromkeys(finding.expected for finding in findings))
    suggestion = next((f.suggestion for f in findings if f.suggestion), None)

    error, spot = pairs[0]
    found = describe_value(error["input"])
    return doc.problem((*prefix, *spot.path), expected, found, suggestion)


def _explain(error: _Error, spot: _Spot) -> _Finding:
    handler = _HANDLERS.get(error["type"])
    if handler is not None:
        return handler(error, spot)

    simple = _SIMPLE.get(error["type"])
    if simple in ("an integer", "a number") and spot.bounds:
        simple = f"{simple} {' and '.join(spot.bounds)}"
    expected = simple or _lower_first(error["msg"])
    return _Finding(
        tuple(spot.path), expected, describe_value(error["input"]), key=spot.key
    )


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _missing(error: _Error, spot: _Spot) -> _Finding:
    *parent, name = spot.path or [""]
    return _Finding(tuple(parent), f"required key '{name}'", "nothing")


def _extra_key(error: _Error, spot: _Spot) -> _Finding:
    name = spot.path[-1]
    keys = list(_fields_by_key(spot.owner)) if spot.owner else []
    expected = f"one of the keys {', '.join(keys)}" if keys else "no key here"
    suggestion = closest(str(name), keys)
    return _Finding(tuple(spot.path), expected, describe_value(name), suggestion, True)


def _choices(error: _Error, spot: _Spot) -> _Finding:
    tp = spot.tp
    if get_origin(tp) is Literal:
        choices = [_plain(value) for value in get_args(tp)]
    elif isinstance(tp, type) and issubclass(tp, Enum):
        choices = [member.value for member in tp]
    else:
        choices = []

    value = error["input"]
    expected = _one_of(choices) if choices else f"one of {error['ctx']['expected']}"
    suggestion = _suggest(value, choices)
    return _Finding(tuple(spot.path), expected, describe_value(value), suggestion)


def _one_of(values: list[Any]) -> str:
    shown = [describe_value(value) for value in values]
    return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)


def _suggest(value: Any, choices: Iterable[Any]) -> str | None:
    if not isinstance(value, str):
        return None
    return closest(value, [str(choice) for choice in choices])


def _tag_invalid(error: _Error, spot: _Spot) -> _Finding:
    name, tags, listed = _tag_context(error, spot)
    data = error["input"]
    value = data.get(name) if name and isinstance(data, dict) else error["ctx"]["tag"]
    path = (*spot.path, name) if name else tuple(spot.path)
    return _Finding(path, listed, describe_value(value), _suggest(value, tags))


def _tag_not_found(error: _Error, spot: _Spot) -> _Finding:
    name, _, listed = _tag_context(error, spot)
    data = error["input"]
    expected = f"required key '{name}' set to {listed}" if name else listed
    found = "nothing" if isinstance(data, dict) else describe_value(data)
    return _Finding(tuple(spot.path), expected, found)


def _tag_context(error: _Error, spot: _Spot) -> tuple[str | None, list[str], str]:
    """Return the discriminator key (None if computed), the tags, and their list."""
    name = _discriminator_name(spot.discriminator)
    shown = error["ctx"]["discriminator"]
    if name is None and shown.startswith("'"):
        name = shown.strip("'")

    tags = [tag for member in _members(spot.tp) for tag in _tags_of(member, name)]
    if tags:
        return name, tags, _one_of(tags)
    shown_tags = error["ctx"].get("expected_tags")
    return name, tags, f"one of {shown_tags}" if shown_tags else "a known tag"


def _custom(error: _Error, spot: _Spot) -> _Finding:
    """Explain a validator's ValueError or AssertionError (see the convention)."""
    message = str(error.get("ctx", {}).get("error", "")) or error["msg"]
    expected, got, found = message.partition("; got ")
    expected = expected.removeprefix("expected ")
    found = found if got else describe_value(error["input"])
    return _Finding(tuple(spot.path), expected, found, key=spot.key)


def _compare(error: _Error, spot: _Spot) -> _Finding:
    kind = "an integer" if spot.tp is int else "a number"
    limit = _limit_text(error["type"], error["ctx"])
    # Show every limit of the field ("> 0 and <= 1") when the walk found them.
    bounds = spot.bounds if limit in spot.bounds else (limit,)
    expected = f"{kind} {' and '.join(bounds)}"
    return _Finding(tuple(spot.path), expected, describe_value(error["input"]))


def _limit_text(error_type: str, ctx: Mapping[str, Any]) -> str:
    symbols = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    attribute, symbol = symbols[error_type]
    return f"{symbol} {_number(ctx[attribute])}"


def _length(error: _Error, spot: _Spot) -> _Finding:
    ctx = error["ctx"]
    word = "at least" if error["type"] == "too_short" else "at most"
    limit = ctx["min_length"] if error["type"] == "too_short" else ctx["max_length"]
    mapping = ctx.get("field_type") == "Dictionary"
    noun, kind = ("key", "a mapping") if mapping else ("item", "a list")
    expected = f"{kind} with {word} {_count(limit, noun)}"
    found = _count(ctx["actual_length"], noun)
    return _Finding(tuple(spot.path), expected, found)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _string_rule(error: _Error, spot: _Spot) -> _Finding:
    ctx = error["ctx"]
    if error["type"] == "string_too_short":
        rule = f"of at least {_count(ctx['min_length'], 'character')}"
    elif error["type"] == "string_too_long":
        rule = f"of at most {_count(ctx['max_length'], 'character')}"
    else:
        rule = f"matching {ctx['pattern']}"
    return _Finding(
        tuple(spot.path), f"a string {rule}", describe_value(error["input"])
    )


def _multiple(error: _Error, spot: _Spot) -> _Finding:
    expected = f"a multiple of {_number(error['ctx']['multiple_of'])}"
    return _Finding(tuple(spot.path), expected, describe_value(error["input"]))


_HANDLERS: Final[dict[str, Callable[[_Error, _Spot], _Finding]]] = {
    "missing": _missing,
    "extra_forbidden": _extra_key,
    "literal_error": _choices,
    "enum": _choices,
    "union_tag_invalid": _tag_invalid,
    "union_tag_not_found": _tag_not_found,
    "value_error": _custom,
    "assertion_error": _custom,
    "greater_than": _compare,
    "greater_than_equal": _compare,
    "less_than": _compare,
    "less_than_equal": _compare,
    "too_short": _length,
    "too_long": _length,
    "string_too_short": _string_rule,
    "string_too_long": _string_rule,
    "string_pattern_mismatch": _string_rule,
    "multiple_of": _multiple,
}
