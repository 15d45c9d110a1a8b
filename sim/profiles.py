"""Serving profiles: how fast a model prefills and decodes on a piece of hardware.

A profile gives, for one (model, hardware) pair, the prefill rate, the decode step
time as a function of batch size, the largest batch, the KV-cache capacity and the
memory the weights take. The shipped figures live in ``sim/data/profiles.yaml``,
each with its source, its provenance and, for derived figures, the roofline
factors that reproduce them.

Examples
--------
>>> book = load_profiles()
>>> profile = book.get("llama-3.1-8b", "h100-sxm-80gb")
>>> round(profile.decode_step_s(1) * 1000, 3)
7.043
>>> book.fits("llama-3.1-70b", "l4-24gb")
False
"""

from __future__ import annotations

import difflib
import functools
import itertools
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "Derivation",
    "Hardware",
    "InvalidProfileFile",
    "Model",
    "Profile",
    "ProfileBook",
    "UnknownName",
    "UnknownProfile",
    "load_profiles",
]

Provenance = Literal["measured", "derived", "mixed"]
Confidence = Literal["published", "third-party", "derived", "estimate"]
KvPrecision = Literal["fp32", "bf16", "fp16", "fp8", "int8"]

NonEmptyStr = Annotated[str, Field(min_length=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
PositiveInt = Annotated[int, Field(ge=1)]

_KV_BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
}
_SHIPPED_FILE = "data/profiles.yaml"


class UnknownProfile(LookupError):
    """No profile exists for a (model, hardware) pair.

    Attributes
    ----------
    model, hardware : str
        The pair that was asked for.
    known : list of tuple of str
        Every (model, hardware) pair that has a profile.
    closest : tuple of str or None
        The known pair whose spelling is nearest, if any is near.
    """

    def __init__(
        self,
        model: str,
        hardware: str,
        known: list[tuple[str, str]],
        closest: tuple[str, str] | None,
    ) -> None:
        self.model = model
        self.hardware = hardware
        self.known = known
        self.closest = closest
        listed = ", ".join(f"{m} on {h}" for m, h in known)
        msg = (
            f"no profile for model '{model}' on hardware '{hardware}'; known: {listed}"
        )
        if closest is not None:
            msg += f". Did you mean '{closest[0]}' on '{closest[1]}'?"
        super().__init__(msg)


class UnknownName(LookupError):
    """A model or hardware name is not in the profile book.

    Attributes
    ----------
    kind : {"model", "hardware"}
        Which table was searched.
    name : str
        The name that was asked for.
    known : list of str
        The names the table holds.
    closest : str or None
        The nearest known spelling, if any is near.
    """

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        near = difflib.get_close_matches(name, known, n=1)
        self.closest = near[0] if near else None
        msg = f"unknown {kind} '{name}'; known: {', '.join(known)}"
        if self.closest is not None:
            msg += f". Did you mean '{self.closest}'?"
        super().__init__(msg)


class InvalidProfileFile(ValueError):
    """A profile file could not be read or failed validation."""


class _Record(BaseModel):
    """Base for every table row: unknown keys are errors and rows are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Hardware(_Record):
    """One device: memory, bandwidth, peak compute and where the figures come from.

    Examples
    --------
    >>> load_profiles().get_hardware("l4-24gb").memory_bandwidth_gb_per_s
    300.0
    """

    kind: Literal["gpu", "soc", "cpu"]
    memory_gb: PositiveFloat
    memory_bandwidth_gb_per_s: PositiveFloat
    peak_dense_fp16_tflops: PositiveFloat
    peak_dense_int8_tops: PositiveFloat | None = None
    tdp_w: PositiveFloat | None = None
    source: NonEmptyStr
    source_date: NonEmptyStr
    confidence: Confidence
    note: str = ""


class Model(_Record):
    """A transformer's architecture, size and bytes per parameter by precision.

    Examples
    --------
    >>> model = load_profiles().get_model("llama-3.1-8b")
    >>> model.kv_bytes_per_token("bf16")
    131072.0
    >>> round(model.weights_gb("int4"), 2)
    4.52
    """

    parameters_b: PositiveFloat
    layers: PositiveInt
    attention_heads: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    hidden_size: PositiveInt
    intermediate_size: PositiveInt
    vocab_size: PositiveInt
    tied_embeddings: bool
    bytes_per_param: dict[str, PositiveFloat]
    default_precision: NonEmptyStr
    source: NonEmptyStr
    source_date: NonEmptyStr
    confidence: Confidence
    note: str = ""

    @model_validator(mode="after")
    def _default_precision_is_listed(self) -> Model:
        if self.default_precision not in self.bytes_per_param:
            listed = ", ".join(sorted(self.bytes_per_param))
            msg = (
                f"`default_precision` must be one of {listed}; "
                f"got '{self.default_precision}'"
            )
            raise ValueError(msg)
        return self

    def weights_gb(self, precision: str | None = None) -> float:
        """Return the weights' size in GB (1e9 bytes) at `precision`.

        Parameters
        ----------
        precision : str, optional
            A key of `bytes_per_param`; the model's default precision if omitted.

        Returns
        -------
        float
            ``parameters_b * bytes_per_param[precision]``.

        Raises
        ------
        KeyError
            If the precision is not listed for this model.

        Examples
        --------
        >>> load_profiles().get_model("llama-3.1-70b").weights_gb()
        141.1
        """
        chosen = self.default_precision if precision is None else precision
        if chosen not in self.bytes_per_param:
            listed = ", ".join(sorted(self.bytes_per_param))
            msg = f"`precision` must be one of {listed}; got '{chosen}'"
            raise KeyError(msg)
        return self.parameters_b * self.bytes_per_param[chosen]

    def kv_bytes_per_token(self, kv_precision: str = "bf16") -> float:
        """Return the KV-cache bytes one token occupies across all layers.

        Parameters
        ----------
        kv_precision : str, default "bf16"
            Element type of the cache: fp32, bf16, fp16, fp8 or int8.

        Returns
        -------
        float
            ``2 * layers * kv_heads * head_dim * bytes_per_element`` (keys and values).

        Examples
        --------
        >>> load_profiles().get_model("llama-3.1-70b").kv_bytes_per_token()
        327680.0
        """
        if kv_precision not in _KV_BYTES_PER_ELEMENT:
            listed = ", ".join(_KV_BYTES_PER_ELEMENT)
            msg = f"`kv_precision` must be one of {listed}; got '{kv_precision}'"
            raise KeyError(msg)
        per_element = _KV_BYTES_PER_ELEMENT[kv_precision]
        return 2.0 * self.layers * self.kv_heads * self.head_dim * per_element


class Derivation(_Record):
    """Roofline factors that reproduce a profile's derived figures.

    The formulas are written out at the top of ``sim/data/profiles.yaml``.
    """

    context_tokens: PositiveInt
    bandwidth_efficiency: Fraction
    compute_efficiency: Fraction
    overhead_ms: Annotated[float, Field(ge=0)]
    usable_memory_fraction: Fraction
    activation_reserve_gb_per_device: Annotated[float, Field(ge=0)]


class Profile(_Record):
    """Serving speed of one model on one hardware replica.

    Decode step times are given at a few batch sizes and joined by straight lines;
    batches outside ``1..max_batch`` are refused rather than extrapolated.

    Examples
    --------
    >>> profile = load_profiles().get("llama-3.1-8b", "l4-24gb")
    >>> profile.max_batch
    30
    >>> round(profile.tokens_per_s_at(30), 1)
    354.2
    >>> round(profile.prefill_s(4521), 6)
    1.0
    """

    model: NonEmptyStr
    hardware: NonEmptyStr
    devices_per_replica: PositiveInt
    precision: NonEmptyStr
    kv_cache_precision: KvPrecision
    engine: NonEmptyStr
    prefill_tokens_per_s: PositiveFloat
    decode_step_ms: Annotated[dict[PositiveInt, PositiveFloat], Field(min_length=1)]
    max_batch: PositiveInt
    kv_cache_tokens: PositiveInt
    model_memory_gb: PositiveFloat
    derivation: Derivation | None = None
    provenance: Provenance
    source: NonEmptyStr
    source_date: NonEmptyStr
    note: NonEmptyStr

    _step_table_s: tuple[float, ...] = PrivateAttr(default=())

    @field_validator("decode_step_ms")
    @classmethod
    def _sort_by_batch(cls, points: dict[int, float]) -> dict[int, float]:
        return dict(sorted(points.items()))

    @model_validator(mode="after")
    def _check_step_curve(self) -> Profile:
        where = f"{self.model} on {self.hardware}"
        batches = list(self.decode_step_ms)

        # The curve must span 1..max_batch so that no batch needs extrapolation.
        if batches[0] != 1:
            msg = f"{where}: `decode_step_ms` must start at batch 1; got {batches[0]}"
            raise ValueError(msg)
        if batches[-1] != self.max_batch:
            msg = (
                f"{where}: the last `decode_step_ms` batch (= {batches[-1]}) "
                f"must equal `max_batch` (= {self.max_batch})"
            )
            raise ValueError(msg)

        for (b0, t0), (b1, t1) in itertools.pairwise(self.decode_step_ms.items()):
            if t1 < t0:
                msg = (
                    f"{where}: decode step time must not fall as the batch grows; "
                    f"{t0} ms at batch {b0} but {t1} ms at batch {b1}"
                )
                raise ValueError(msg)
            # Tokens per second b / t(b) must not fall either; compared crosswise
            # to avoid dividing.
            if b1 * t0 < b0 * t1:
                msg = (
                    f"{where}: throughput must not fall as the batch grows; "
                    f"{b0 / t0 * 1000:.1f} tokens/s at batch {b0} but "
                    f"{b1 / t1 * 1000:.1f} tokens/s at batch {b1}"
                )
                raise ValueError(msg)
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Precompute the per-batch step table used by `decode_step_s`."""
        batches = np.fromiter(self.decode_step_ms.keys(), dtype=float)
        steps_s = np.fromiter(self.decode_step_ms.values(), dtype=float) / 1000.0
        every_batch = np.arange(1, self.max_batch + 1, dtype=float)
        table = np.interp(every_batch, batches, steps_s)
        self._step_table_s = (0.0, *(float(t) for t in table))

    def decode_step_s(self, batch: int) -> float:
        """Return the time of one decode step for `batch` running sequences.

        Parameters
        ----------
        batch : int
            Sequences decoded together, from 1 to `max_batch`.

        Returns
        -------
        float
            Seconds, linearly interpolated between the tabulated batch sizes.

        Raises
        ------
        TypeError
            If `batch` is not an integer.
        ValueError
            If `batch` is below 1 or above `max_batch`.

        Examples
        --------
        >>> profile = load_profiles().get("llama-3.1-8b", "h100-sxm-80gb")
        >>> round(profile.decode_step_s(256), 6)
        0.019813
        """
        self._check_batch(batch)
        return self._step_table_s[batch]

    def tokens_per_s_at(self, batch: int) -> float:
        """Return decode throughput, ``batch / decode_step_s(batch)``, in tokens/s.

        Parameters
        ----------
        batch : int
            Sequences decoded together, from 1 to `max_batch`.

        Returns
        -------
        float
            Output tokens per second summed over the batch.

        Raises
        ------
        TypeError, ValueError
            As for `decode_step_s`.

        Examples
        --------
        >>> profile = load_profiles().get("llama-3.1-8b", "a100-sxm-80gb")
        >>> round(profile.tokens_per_s_at(1), 1)
        91.5
        """
        return batch / self.decode_step_s(batch)

    def prefill_s(self, tokens: int) -> float:
        """Return the time to prefill a prompt of `tokens` tokens.

        Parameters
        ----------
        tokens : int
            Prompt length; 0 costs nothing.

        Returns
        -------
        float
            Seconds, ``tokens / prefill_tokens_per_s``.

        Raises
        ------
        TypeError
            If `tokens` is not an integer.
        ValueError
            If `tokens` is negative.

        Examples
        --------
        >>> profile = load_profiles().get("llama-3.1-8b", "a100-sxm-80gb")
        >>> round(profile.prefill_s(1024), 4)
        0.0879
        """
        if isinstance(tokens, bool) or not isinstance(tokens, int | np.integer):
            msg = f"`tokens` must be an int; got {type(tokens).__name__}"
            raise TypeError(msg)
        if tokens < 0:
            msg = f"`tokens` (= {tokens}) must be >= 0"
            raise ValueError(msg)
        return int(tokens) / self.prefill_tokens_per_s

    def step_table_s(self) -> list[float]:
        """Return decode step seconds indexed by batch, for O(1) lookup.

        Returns
        -------
        list of float
            ``max_batch + 1`` entries; entry ``b`` is ``decode_step_s(b)`` and entry
            0, which no batch uses, is 0.0. The list is a fresh copy.

        Examples
        --------
        >>> profile = load_profiles().get("llama-3.1-8b", "jetson-agx-orin-64gb")
        >>> table = profile.step_table_s()
        >>> len(table), table[0]
        (9, 0.0)
        """
        return list(self._step_table_s)

    def _check_batch(self, batch: int) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int | np.integer):
            msg = f"`batch` must be an int; got {type(batch).__name__}"
            raise TypeError(msg)
        if not 1 <= batch <= self.max_batch:
            msg = (
                f"`batch` (= {batch}) must be between 1 and `max_batch` "
                f"(= {self.max_batch}) for {self.model} on {self.hardware}"
            )
            raise ValueError(msg)


class ProfileBook(_Record):
    """All hardware, models and profiles, cross-checked against each other.

    Examples
    --------
    >>> book = load_profiles()
    >>> ("llama-3.1-70b", "a100-sxm-80gb") in book.pairs()
    True
    """

    hardware: dict[str, Hardware]
    models: dict[str, Model]
    profiles: list[Profile]

    _index: dict[tuple[str, str], Profile] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self) -> ProfileBook:
        seen: set[tuple[str, str]] = set()
        for position, profile in enumerate(self.profiles):
            where = f"profiles[{position}] ({profile.model} on {profile.hardware})"
            pair = (profile.model, profile.hardware)
            if pair in seen:
                msg = f"{where}: duplicate profile for this pair"
                raise ValueError(msg)
            seen.add(pair)

            if profile.model not in self.models:
                msg = (
                    f"{where}: `model` is not defined; known: {', '.join(self.models)}"
                )
                raise ValueError(msg)
            if profile.hardware not in self.hardware:
                known = ", ".join(self.hardware)
                msg = f"{where}: `hardware` is not defined; known: {known}"
                raise ValueError(msg)

            model = self.models[profile.model]
            if profile.precision not in model.bytes_per_param:
                listed = ", ".join(sorted(model.bytes_per_param))
                msg = (
                    f"{where}: `precision` must be one of {listed}; "
                    f"got '{profile.precision}'"
                )
                raise ValueError(msg)

            # A model that does not fit its replica cannot have a profile.
            capacity_gb = (
                profile.devices_per_replica * self.hardware[profile.hardware].memory_gb
            )
            if profile.model_memory_gb > capacity_gb:
                msg = (
                    f"{where}: `model_memory_gb` (= {profile.model_memory_gb}) exceeds "
                    f"the replica's memory (= {capacity_gb} GB on "
                    f"{profile.devices_per_replica} device(s)); the model does not fit"
                )
                raise ValueError(msg)
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Index profiles by (model, hardware) for `get`."""
        self._index = {(p.model, p.hardware): p for p in self.profiles}

    def get(self, model: str, hardware: str) -> Profile:
        """Return the profile of `model` on `hardware`.

        Parameters
        ----------
        model : str
            Model name, e.g. ``"llama-3.1-8b"``.
        hardware : str
            Hardware name, e.g. ``"h100-sxm-80gb"``.

        Returns
        -------
        Profile

        Raises
        ------
        UnknownProfile
            If no profile exists for the pair; it lists the known pairs and the
            closest spelling.

        Examples
        --------
        >>> load_profiles().get("llama-3.1-70b", "h100-sxm-80gb").devices_per_replica
        4
        """
        try:
            return self._index[(model, hardware)]
        except KeyError:
            known = self.pairs()
            raise UnknownProfile(
                model, hardware, known, _closest_pair(model, hardware, known)
            ) from None

    def pairs(self) -> list[tuple[str, str]]:
        """Return every (model, hardware) pair that has a profile.

        Examples
        --------
        >>> len(load_profiles().pairs()) >= 8
        True
        """
        return list(self._index)

    def get_hardware(self, name: str) -> Hardware:
        """Return the hardware entry called `name`.

        Raises
        ------
        UnknownName
            If there is no such entry.

        Examples
        --------
        >>> load_profiles().get_hardware("h100-sxm-80gb").memory_gb
        80.0
        """
        if name not in self.hardware:
            raise UnknownName(kind="hardware", name=name, known=list(self.hardware))
        return self.hardware[name]

    def get_model(self, name: str) -> Model:
        """Return the model entry called `name`.

        Raises
        ------
        UnknownName
            If there is no such entry.

        Examples
        --------
        >>> load_profiles().get_model("llama-3.1-8b").layers
        32
        """
        if name not in self.models:
            raise UnknownName(kind="model", name=name, known=list(self.models))
        return self.models[name]

    def fits(
        self,
        model: str,
        hardware: str,
        *,
        devices: int = 1,
        precision: str | None = None,
    ) -> bool:
        """Tell whether the model's weights fit in the memory of `devices` devices.

        Parameters
        ----------
        model, hardware : str
            Names from the book; the pair need not have a profile.
        devices : int, default 1
            Devices pooled by tensor parallelism.
        precision : str, optional
            Weight precision; the model's default precision if omitted.

        Returns
        -------
        bool
            True when ``weights_gb < devices * memory_gb``. This is necessary, not
            sufficient: serving also needs room for the KV cache.

        Raises
        ------
        UnknownName
            If the model or hardware is not in the book.
        KeyError
            If `precision` is not listed for the model.
        ValueError
            If `devices` is below 1.

        Examples
        --------
        >>> book = load_profiles()
        >>> book.fits("llama-3.1-70b", "h100-sxm-80gb", devices=4)
        True
        """
        if devices < 1:
            msg = f"`devices` (= {devices}) must be >= 1"
            raise ValueError(msg)
        weights_gb = self.get_model(model).weights_gb(precision)
        return weights_gb < devices * self.get_hardware(hardware).memory_gb


def load_profiles(path: str | Path | None = None) -> ProfileBook:
    """Load and validate a profile file.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file with ``hardware``, ``models`` and ``profiles``. Omitted, the
        file shipped with the package is loaded once and the same book is returned
        on every later call.

    Returns
    -------
    ProfileBook

    Raises
    ------
    InvalidProfileFile
        If the file cannot be read, is not YAML, or fails validation; the message
        names the file and every problem found.

    Examples
    --------
    >>> load_profiles() is load_profiles()
    True
    """
    if path is None:
        return _load_shipped()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        msg = f"{file}: cannot read profile file: {err}"
        raise InvalidProfileFile(msg) from err
    return _parse(text, str(file))


@functools.cache
def _load_shipped() -> ProfileBook:
    shipped = resources.files(__package__ or "sim").joinpath(_SHIPPED_FILE)
    return _parse(shipped.read_text(encoding="utf-8"), _SHIPPED_FILE)


def _parse(text: str, origin: str) -> ProfileBook:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        msg = f"{origin}: not valid YAML: {err}"
        raise InvalidProfileFile(msg) from err
    try:
        return ProfileBook.model_validate(data)
    except ValidationError as err:
        problems = err.errors(include_url=False)
        lines = [f"{origin}: {len(problems)} problem(s)"]
        lines += [f"  {_field_path(p['loc'])}: {_plain(p['msg'])}" for p in problems]
        msg = "\n".join(lines)
        raise InvalidProfileFile(msg) from err


def _field_path(location: tuple[int | str, ...]) -> str:
    """Write a pydantic error location as the YAML path a user would type."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "(top level)"


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")


def _closest_pair(
    model: str, hardware: str, known: list[tuple[str, str]]
) -> tuple[str, str] | None:
    keys = {f"{m} @ {h}": (m, h) for m, h in known}
    near = difflib.get_close_matches(f"{model} @ {hardware}", list(keys), n=1)
    return keys[near[0]] if near else None
