"""The price catalogue: what compute, bytes, storage, edge hardware and power cost.

Topologies name catalogue entries (``aws-g6.xlarge``,
``aws-internet-egress-us-east-1``) instead of repeating prices. This module loads
the catalogue, validates it, looks entries up by name and offers the pure pricing
helpers that turn volumes and hours into USD:

- :func:`tiered_cost_usd` prices a month's volume on marginal tiers,
- :func:`instance_usd_per_h` picks an instance's on-demand, committed or spot rate,
- :func:`edge_amortised_usd_per_h` spreads a device's purchase over its life.

Every figure carries a source, a source date and a confidence; figures whose
source differs from their entry's carry their own in ``figure_sources``.
:meth:`Catalog.describe` lists them all, one row per figure.

Units are in the names: ``usd_per_h``, ``usd_per_gb``, ``gb_per_month``. Transfer,
CDN and storage volumes are in the unit the provider bills, given by each entry's
``unit`` (GB or GiB). A month is :data:`HOURS_PER_MONTH` hours.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args

import polars as pl
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "DESCRIBE_SCHEMA",
    "HOURS_PER_MONTH",
    "Catalog",
    "CatalogError",
    "CdnEntry",
    "EdgeHardwareEntry",
    "ElectricityEntry",
    "InstanceEntry",
    "Pricing",
    "Provenance",
    "StorageEntry",
    "Tier",
    "TransferEntry",
    "UnknownCatalogEntry",
    "edge_amortised_usd_per_h",
    "instance_usd_per_h",
    "load_catalog",
    "tiered_cost_usd",
]

HOURS_PER_MONTH: float = 8760.0 / 12.0
"""Hours in a billing month, 730 = 8760 / 12, the convention cloud calculators use."""

Confidence = Literal["published", "third-party", "derived", "estimate"]
Pricing = Literal["on_demand", "committed_1y", "committed_3y", "spot"]
TransferKind = Literal[
    "internet_egress", "inter_region", "inter_zone", "intra_zone", "private_link"
]
VolumeUnit = Literal["GB", "GiB"]

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]

# Entry names are kebab-case; dots are allowed because instance types contain them
# (`aws-g6.xlarge`).
_NAME_PATTERN = r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$"

_SECTION_LABELS = {
    "instances": "instance",
    "transfer": "transfer",
    "cdn": "cdn",
    "storage": "storage",
    "edge_hardware": "edge hardware",
    "electricity": "electricity",
}

DESCRIBE_SCHEMA: dict[str, type[pl.DataType]] = {
    "section": pl.Utf8,
    "name": pl.Utf8,
    "figure": pl.Utf8,
    "value": pl.Float64,
    "unit": pl.Utf8,
    "source": pl.Utf8,
    "source_date": pl.Utf8,
    "confidence": pl.Utf8,
}
"""Columns of :meth:`Catalog.describe`, in order, with their polars types."""

# A figure as listed by describe(): (figure name, value, unit).
_Figure = tuple[str, float, str]


class CatalogError(ValueError):
    """A catalogue file that cannot be read or does not validate."""


class UnknownCatalogEntry(LookupError):
    """A name that is not in the catalogue section it was looked up in.

    Parameters
    ----------
    section : str
        The catalogue section searched, e.g. ``"transfer"``.
    name : str
        The name that was asked for.
    known : sequence of str
        The names the section does hold.

    Attributes
    ----------
    section, name : str
        As given.
    known : list of str
        The section's names, sorted.
    closest : str or None
        The known name nearest to ``name``, or None when none is close.

    Examples
    --------
    >>> err = UnknownCatalogEntry("transfer", "aws-egres", ["aws-egress", "gcp-cdn"])
    >>> str(err)
    "unknown transfer entry 'aws-egres'; did you mean 'aws-egress'?"
    """

    def __init__(self, section: str, name: str, known: Sequence[str]) -> None:
        self.section = section
        self.name = name
        self.known = sorted(known)
        matches = difflib.get_close_matches(name, self.known, n=1)
        self.closest: str | None = matches[0] if matches else None
        super().__init__(str(self))

    def __str__(self) -> str:
        """Name the section and the missing entry, then suggest or list names."""
        label = _SECTION_LABELS.get(self.section, self.section)
        text = f"unknown {label} entry '{self.name}'"
        if self.closest is not None:
            return f"{text}; did you mean '{self.closest}'?"
        return f"{text}; known: {', '.join(self.known) or '(none)'}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Model):
    """Where a figure comes from and how far to trust it.

    ``confidence`` is one of ``published`` (the provider's own page or a verbatim
    transcript), ``third-party`` (a page or repository quoting the provider),
    ``derived`` (computed by us from sourced figures; the formula is in ``note``)
    or ``estimate`` (our assumption; ``note`` says how it was made).
    """

    source: NonEmptyStr
    source_date: NonEmptyStr
    confidence: Confidence
    note: str | None = None


class _Entry(Provenance):
    """An entry: its figures, its provenance and per-figure overrides."""

    figure_sources: dict[str, Provenance] = Field(default_factory=dict)

    def figures(self) -> list[_Figure]:
        """Return ``(figure, value, unit)`` for every figure the entry holds."""
        raise NotImplementedError

    def provenance_of(self, figure: str) -> Provenance:
        """Return the provenance of one figure: its own, else the entry's."""
        return self.figure_sources.get(figure, self)

    @model_validator(mode="after")
    def _figure_sources_name_figures(self) -> _Entry:
        if not self.figure_sources:
            return self
        names = {figure for figure, _, _ in self.figures()}
        stray = sorted(set(self.figure_sources) - names)
        if stray:
            msg = (
                f"`figure_sources` names {stray}, which are not figures of this "
                f"entry; figures are {sorted(names)}"
            )
            raise ValueError(msg)
        return self


class Tier(_Model):
    """One marginal price tier of a monthly volume.

    ``up_to_gb_per_month`` is the cumulative monthly volume at which the tier ends,
    in the entry's unit (GB or GiB); None means no upper bound.
    """

    up_to_gb_per_month: PositiveFloat | None
    usd_per_gb: NonNegativeFloat


def _check_tiers(tiers: Sequence[Tier]) -> None:
    """Raise ValueError unless bounds ascend strictly and only the last is None."""
    if not tiers:
        msg = "`tiers` must hold at least one tier"
        raise ValueError(msg)

    bounds = [tier.up_to_gb_per_month for tier in tiers]
    if bounds[-1] is not None:
        msg = f"the last tier must have `up_to_gb_per_month: null`; got {bounds[-1]}"
        raise ValueError(msg)

    finite = bounds[:-1]
    if any(bound is None for bound in finite):
        msg = "only the last tier may have `up_to_gb_per_month: null`"
        raise ValueError(msg)

    # Checked above: no None left in `finite`.
    ascending = [b for b in finite if b is not None]
    if any(later <= earlier for earlier, later in itertools.pairwise(ascending)):
        msg = f"tier bounds must ascend strictly; got {ascending}"
        raise ValueError(msg)


def _tier_figures(tiers: Sequence[Tier], unit: str) -> list[_Figure]:
    figures: list[_Figure] = []
    for number, tier in enumerate(tiers, start=1):
        if tier.up_to_gb_per_month is not None:
            bound = (
                f"tier_{number}_up_to_gb_per_month",
                tier.up_to_gb_per_month,
                f"{unit}/month",
            )
            figures.append(bound)
        figures.append((f"tier_{number}_usd_per_gb", tier.usd_per_gb, f"USD/{unit}"))
    return figures


class InstanceEntry(_Entry):
    """Compute priced per replica-hour (whole instance, Linux).

    A price is None when no source gives it; :func:`instance_usd_per_h` refuses
    such a price rather than guessing.
    """

    provider: NonEmptyStr
    region: NonEmptyStr
    gpu: str | None
    gpus: NonNegativeInt
    vcpus: PositiveInt
    memory_gib: PositiveFloat
    on_demand_usd_per_h: NonNegativeFloat
    committed_1y_usd_per_h: NonNegativeFloat | None
    committed_3y_usd_per_h: NonNegativeFloat | None
    spot_usd_per_h: NonNegativeFloat | None

    @model_validator(mode="after")
    def _gpu_matches_count(self) -> InstanceEntry:
        if (self.gpu is None) != (self.gpus == 0):
            msg = f"`gpu` and `gpus` disagree: gpu={self.gpu!r}, gpus={self.gpus}"
            raise ValueError(msg)
        return self

    def figures(self) -> list[_Figure]:
        """Return the specifications and every known price."""
        figures: list[_Figure] = [
            ("gpus", float(self.gpus), "count"),
            ("vcpus", float(self.vcpus), "count"),
            ("memory_gib", self.memory_gib, "GiB"),
        ]
        for pricing in get_args(Pricing):
            price = getattr(self, f"{pricing}_usd_per_h")
            if price is not None:
                figures.append((f"{pricing}_usd_per_h", price, "USD/h"))
        return figures


class TransferEntry(_Entry):
    """Bytes crossing a link: either volume ``tiers`` or a flat ``usd_per_gb``."""

    kind: TransferKind
    ingress_free: bool
    unit: VolumeUnit = "GB"
    free_gb_per_month: NonNegativeFloat = 0.0
    tiers: list[Tier] | None = None
    usd_per_gb: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _tiers_or_flat(self) -> TransferEntry:
        if (self.tiers is None) == (self.usd_per_gb is None):
            msg = "give exactly one of `tiers` and `usd_per_gb`"
            raise ValueError(msg)
        if self.tiers is not None:
            _check_tiers(self.tiers)
        return self

    def effective_tiers(self) -> list[Tier]:
        """Return the tiers, a flat price being one unbounded tier.

        Examples
        --------
        >>> entry = load_catalog().transfer("gcp-inter-zone-us-central1")
        >>> entry.effective_tiers()
        [Tier(up_to_gb_per_month=None, usd_per_gb=0.01)]
        """
        if self.tiers is not None:
            return list(self.tiers)
        return [Tier(up_to_gb_per_month=None, usd_per_gb=self.flat_usd_per_gb())]

    def flat_usd_per_gb(self) -> float:
        """Return the flat price; raise ValueError for a tiered entry."""
        if self.usd_per_gb is None:
            msg = "this transfer entry is tiered; use `effective_tiers()`"
            raise ValueError(msg)
        return self.usd_per_gb

    def figures(self) -> list[_Figure]:
        """Return the free allowance and the tiers or flat price."""
        figures: list[_Figure] = [
            ("free_gb_per_month", self.free_gb_per_month, f"{self.unit}/month")
        ]
        if self.tiers is not None:
            figures += _tier_figures(self.tiers, self.unit)
        if self.usd_per_gb is not None:
            figures.append(("usd_per_gb", self.usd_per_gb, f"USD/{self.unit}"))
        return figures


class CdnEntry(_Entry):
    """Bytes delivered by a CDN, its requests and the origin-to-CDN cache fill."""

    unit: VolumeUnit = "GB"
    free_gb_per_month: NonNegativeFloat = 0.0
    free_requests_per_month: NonNegativeFloat = 0.0
    tiers: list[Tier]
    usd_per_10k_requests: NonNegativeFloat
    cache_fill_usd_per_gb: NonNegativeFloat

    @field_validator("tiers")
    @classmethod
    def _tiers_valid(cls, tiers: list[Tier]) -> list[Tier]:
        _check_tiers(tiers)
        return tiers

    def figures(self) -> list[_Figure]:
        """Return the free allowances, delivery tiers, request and fill prices."""
        unit = self.unit
        return [
            ("free_gb_per_month", self.free_gb_per_month, f"{unit}/month"),
            ("free_requests_per_month", self.free_requests_per_month, "count/month"),
            *_tier_figures(self.tiers, unit),
            ("usd_per_10k_requests", self.usd_per_10k_requests, "USD/10k requests"),
            ("cache_fill_usd_per_gb", self.cache_fill_usd_per_gb, f"USD/{unit}"),
        ]


class StorageEntry(_Entry):
    """Object storage: capacity per month, writes and reads per thousand."""

    provider: NonEmptyStr
    region: NonEmptyStr
    unit: VolumeUnit = "GB"
    usd_per_gb_month: NonNegativeFloat
    usd_per_1k_writes: NonNegativeFloat
    usd_per_1k_reads: NonNegativeFloat

    def figures(self) -> list[_Figure]:
        """Return the capacity, write and read prices."""
        return [
            ("usd_per_gb_month", self.usd_per_gb_month, f"USD/{self.unit}-month"),
            ("usd_per_1k_writes", self.usd_per_1k_writes, "USD/1k requests"),
            ("usd_per_1k_reads", self.usd_per_1k_reads, "USD/1k requests"),
        ]


class EdgeHardwareEntry(_Entry):
    """A device bought for an edge site, amortised over its life.

    ``memory_gb`` is the memory a model can use (unified memory on Jetson, GPU
    memory on a server); ``notes`` describes the hardware.
    """

    purchase_usd: PositiveFloat
    amortisation_months: PositiveInt
    idle_w: NonNegativeFloat
    busy_w: NonNegativeFloat
    memory_gb: PositiveFloat
    notes: NonEmptyStr

    @model_validator(mode="after")
    def _busy_not_below_idle(self) -> EdgeHardwareEntry:
        if self.busy_w < self.idle_w:
            msg = f"`busy_w` ({self.busy_w}) is below `idle_w` ({self.idle_w})"
            raise ValueError(msg)
        return self

    def figures(self) -> list[_Figure]:
        """Return the purchase price, life, power draws and memory."""
        return [
            ("purchase_usd", self.purchase_usd, "USD"),
            ("amortisation_months", float(self.amortisation_months), "months"),
            ("idle_w", self.idle_w, "W"),
            ("busy_w", self.busy_w, "W"),
            ("memory_gb", self.memory_gb, "GB"),
        ]


class ElectricityEntry(_Entry):
    """The price of electricity at a site."""

    region: NonEmptyStr
    usd_per_kwh: NonNegativeFloat

    def figures(self) -> list[_Figure]:
        """Return the price per kWh."""
        return [("usd_per_kwh", self.usd_per_kwh, "USD/kWh")]


class Catalog(_Model):
    """The whole catalogue: one dict of named entries per section.

    Each ``*_entries`` field is read from the YAML section of the same name
    without the suffix (``transfer_entries`` from ``transfer:``), so that the
    lookup methods can carry the section names.

    Examples
    --------
    >>> catalog = load_catalog()
    >>> catalog.instance("aws-g6.xlarge").gpu
    'L4-24GB'
    >>> catalog.transfer("aws-inter-region-us-east-1").usd_per_gb
    0.02
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: PositiveInt
    currency: Literal["USD"]
    compiled: NonEmptyStr
    instance_entries: dict[str, InstanceEntry] = Field(alias="instances")
    transfer_entries: dict[str, TransferEntry] = Field(alias="transfer")
    cdn_entries: dict[str, CdnEntry] = Field(alias="cdn")
    storage_entries: dict[str, StorageEntry] = Field(alias="storage")
    edge_hardware_entries: dict[str, EdgeHardwareEntry] = Field(alias="edge_hardware")
    electricity_entries: dict[str, ElectricityEntry] = Field(alias="electricity")

    @field_validator(
        "instance_entries",
        "transfer_entries",
        "cdn_entries",
        "storage_entries",
        "edge_hardware_entries",
        "electricity_entries",
    )
    @classmethod
    def _names_are_kebab_case(cls, entries: dict[str, _Entry]) -> dict[str, _Entry]:
        bad = sorted(name for name in entries if not re.match(_NAME_PATTERN, name))
        if bad:
            msg = f"entry names must be kebab-case (e.g. `aws-g6.xlarge`); got {bad}"
            raise ValueError(msg)
        return entries

    def sections(self) -> dict[str, Mapping[str, _Entry]]:
        """Return each section's entries keyed by the section's YAML name.

        Examples
        --------
        >>> list(load_catalog().sections())[:2]
        ['instances', 'transfer']
        """
        return {
            "instances": self.instance_entries,
            "transfer": self.transfer_entries,
            "cdn": self.cdn_entries,
            "storage": self.storage_entries,
            "edge_hardware": self.edge_hardware_entries,
            "electricity": self.electricity_entries,
        }

    def instance(self, name: str) -> InstanceEntry:
        """Return the instance entry called ``name``.

        Raises
        ------
        UnknownCatalogEntry
            If there is none; the error names the closest entry.

        Examples
        --------
        >>> load_catalog().instance("aws-g6.xlarge").on_demand_usd_per_h
        0.8048
        """
        return _lookup("instances", self.instance_entries, name)

    def transfer(self, name: str) -> TransferEntry:
        """Return the transfer entry called ``name``.

        Raises
        ------
        UnknownCatalogEntry
            If there is none; the error names the closest entry.

        Examples
        --------
        >>> load_catalog().transfer("aws-internet-egress-us-east-1").free_gb_per_month
        100.0
        """
        return _lookup("transfer", self.transfer_entries, name)

    def cdn(self, name: str) -> CdnEntry:
        """Return the CDN entry called ``name``.

        Raises
        ------
        UnknownCatalogEntry
            If there is none; the error names the closest entry.

        Examples
        --------
        >>> load_catalog().cdn("aws-cloudfront-na-eu").cache_fill_usd_per_gb
        0.0
        """
        return _lookup("cdn", self.cdn_entries, name)

    def storage(self, name: str) -> StorageEntry:
        """Return the storage entry called ``name``.

        Raises
        ------
        UnknownCatalogEntry
            If there is none; the error names the closest entry.

        Examples
        --------
        >>> load_catalog().storage("aws-s3-standard-us-east-1").usd_per_gb_month
        0.023
        """
        return _lookup("storage", self.storage_entries, name)

    def edge_hardware(self, name: str) -> EdgeHardwareEntry:
        """Return the edge hardware entry called ``name``.

        Raises
        ------
        UnknownCatalogEntry
            If there is none; the error names the closest entry.

        Examples
        --------
        >>> load_catalog().edge_hardware("jetson-orin-nano-super-8gb").purchase_usd
        249.0
        """
        return _lookup("edge_hardware", self.edge_hardware_entries, name)

    def electricity(self, name: str) -> ElectricityEntry:
        """Return the electricity entry called ``name``.

        Raises
        ------
        UnknownCatalogEntry
            If there is none; the error names the closest entry.

        Examples
        --------
        >>> load_catalog().electricity("us-va-commercial-2023").usd_per_kwh
        0.0895
        """
        return _lookup("electricity", self.electricity_entries, name)

    def describe(self) -> pl.DataFrame:
        """List every figure with its unit and provenance, one row per figure.

        Prices that no source gives (None) are not figures and are left out.
        Rows follow section order, then entry name, then the entry's own order.
        The columns are :data:`DESCRIBE_SCHEMA`.

        Examples
        --------
        >>> table = load_catalog().describe()
        >>> table.columns[:4]
        ['section', 'name', 'figure', 'value']
        >>> table.filter(pl.col("name") == "aws-g6.xlarge").height
        7
        """
        rows: list[tuple[str, str, str, float, str, str, str, str]] = []
        for section, entries in self.sections().items():
            for name in sorted(entries):
                entry = entries[name]
                for figure, value, unit in entry.figures():
                    origin = entry.provenance_of(figure)
                    rows.append(
                        (
                            section,
                            name,
                            figure,
                            value,
                            unit,
                            origin.source,
                            origin.source_date,
                            origin.confidence,
                        )
                    )
        return pl.DataFrame(rows, schema=DESCRIBE_SCHEMA, orient="row")


EntryT = TypeVar("EntryT", bound=_Entry)


def _lookup(section: str, entries: Mapping[str, EntryT], name: str) -> EntryT:
    try:
        return entries[name]
    except KeyError:
        # The suggestion replaces the KeyError, which would only repeat the name.
        raise UnknownCatalogEntry(section, name, list(entries)) from None


# --- loading ---------------------------------------------------------------------


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a price catalogue.

    Parameters
    ----------
    path : str, Path or None
        A catalogue YAML file. None loads the catalogue shipped with placesim
        (``sim/data/catalog.yaml``); that load is cached, so every caller shares
        one frozen :class:`Catalog`.

    Returns
    -------
    Catalog

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CatalogError
        If the file is not YAML or does not match the catalogue schema; the
        message names the file and every field in error.

    Examples
    --------
    >>> catalog = load_catalog()
    >>> catalog.currency
    'USD'
    >>> load_catalog() is catalog
    True
    """
    if path is None:
        return _load_shipped()
    path = Path(path)
    return _parse(path.read_text(encoding="utf-8"), origin=str(path))


@functools.cache
def _load_shipped() -> Catalog:
    text = resources.files("sim").joinpath("data/catalog.yaml").read_text("utf-8")
    return _parse(text, origin="sim/data/catalog.yaml (shipped)")


def _parse(text: str, origin: str) -> Catalog:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        msg = f"{origin}: not valid YAML: {err}"
        raise CatalogError(msg) from err

    if not isinstance(data, dict):
        msg = f"{origin}: expected a mapping of catalogue sections; got {data!r:.60}"
        raise CatalogError(msg)

    try:
        return Catalog.model_validate(data)
    except ValidationError as err:
        msg = f"{origin}: invalid catalogue:\n{err}"
        raise CatalogError(msg) from err


# --- pricing helpers -------------------------------------------------------------


def tiered_cost_usd(
    tiers: Sequence[Tier], gb_in_month: float, free_gb_per_month: float = 0.0
) -> float:
    """Price a month's volume on marginal tiers.

    The free allowance is deducted first; the remaining volume fills the tiers in
    order, each GB priced at the rate of the tier it falls in (the first X GB at
    rate 1, the next at rate 2, ...). Volumes and bounds share one unit, the
    entry's ``unit`` (GB or GiB).

    Parameters
    ----------
    tiers : sequence of Tier
        Tiers with ascending ``up_to_gb_per_month`` bounds; None ends the list.
    gb_in_month : float
        Volume in the month, >= 0.
    free_gb_per_month : float, default 0
        Volume not charged, >= 0.

    Returns
    -------
    float
        The month's cost in USD.

    Raises
    ------
    ValueError
        If a volume is negative, or the volume runs past the last tier's bound.

    Examples
    --------
    100 GB free, then 0.09 per GB up to 10 240 GB, then 0.085:

    >>> tiers = [Tier(up_to_gb_per_month=10240, usd_per_gb=0.09),
    ...          Tier(up_to_gb_per_month=None, usd_per_gb=0.085)]
    >>> round(tiered_cost_usd(tiers, 12_000, free_gb_per_month=100), 2)
    1062.7
    """
    if gb_in_month < 0 or free_gb_per_month < 0:
        msg = (
            "volumes must be >= 0; got "
            f"`gb_in_month`={gb_in_month}, `free_gb_per_month`={free_gb_per_month}"
        )
        raise ValueError(msg)

    billable_gb = max(0.0, gb_in_month - free_gb_per_month)
    cost_usd = 0.0
    lower_gb = 0.0
    for tier in tiers:
        upper_gb = (
            math.inf if tier.up_to_gb_per_month is None else tier.up_to_gb_per_month
        )
        in_tier_gb = min(billable_gb, upper_gb) - lower_gb
        if in_tier_gb <= 0:
            return cost_usd
        cost_usd += in_tier_gb * tier.usd_per_gb
        lower_gb = upper_gb

    if billable_gb > lower_gb:
        msg = (
            f"{billable_gb} billable units run past the last tier's bound "
            f"({lower_gb}); end the tiers with `up_to_gb_per_month: null`"
        )
        raise ValueError(msg)
    return cost_usd


def instance_usd_per_h(entry: InstanceEntry, pricing: Pricing) -> float:
    """Return an instance's hourly price under one pricing model.

    Parameters
    ----------
    entry : InstanceEntry
    pricing : {"on_demand", "committed_1y", "committed_3y", "spot"}

    Returns
    -------
    float
        USD per instance-hour.

    Raises
    ------
    ValueError
        If ``pricing`` is not one of the four models, or the catalogue has no
        such price for this instance (the message lists the prices it has).

    Examples
    --------
    >>> entry = load_catalog().instance("gcp-g2-standard-4")
    >>> instance_usd_per_h(entry, "committed_1y")
    0.4453
    """
    allowed = get_args(Pricing)
    if pricing not in allowed:
        msg = f"`pricing` must be one of {', '.join(allowed)}; got {pricing!r}"
        raise ValueError(msg)

    price: float | None = getattr(entry, f"{pricing}_usd_per_h")
    if price is None:
        known = [p for p in allowed if getattr(entry, f"{p}_usd_per_h") is not None]
        msg = (
            f"no {pricing} price for this {entry.provider} {entry.region} instance; "
            f"known: {', '.join(known)}"
        )
        raise ValueError(msg)
    return price


def edge_amortised_usd_per_h(entry: EdgeHardwareEntry) -> float:
    """Spread an edge device's purchase price evenly over its life, per hour.

    ``purchase_usd / (amortisation_months * HOURS_PER_MONTH)``, with
    :data:`HOURS_PER_MONTH` = 730. Power is not included.

    Parameters
    ----------
    entry : EdgeHardwareEntry

    Returns
    -------
    float
        USD per hour of the device's life, busy or idle.

    Examples
    --------
    >>> entry = load_catalog().edge_hardware("jetson-orin-nano-super-8gb")
    >>> round(edge_amortised_usd_per_h(entry), 5)  # 249 / (36 * 730)
    0.00947
    """
    return entry.purchase_usd / (entry.amortisation_months * HOURS_PER_MONTH)
