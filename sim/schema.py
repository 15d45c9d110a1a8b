"""Scenario and topology models, YAML loading and every validation rule.

A scenario file names a topology file, request classes and run settings. Loading
one goes through three steps, and every problem found on the way is reported at
once, located by file, line, column and field path:

1. YAML is parsed keeping the position of every key and value
   (:mod:`sim.yamlio`).
2. Each document is checked against its pydantic model below: keys, types and
   ranges.
3. Cross-file rules are checked: nodes named in links exist, origins and pools
   exist, trace files exist and hold the named columns, every origin can reach
   the pools that serve it.

Only a scenario that passes all three reaches the engine, which trusts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import networkx as nx
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.catalog import Catalog, UnknownCatalogEntry, load_catalog
from sim.errors import InputError, Problem, closest
from sim.profiles import load_profiles
from sim.yamlio import LocatedYaml, Path_, load_yaml, validate

M = TypeVar("M", bound=BaseModel)
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- distributions -------------------------------------------------------------
# The unit of a distribution's parameters is the unit of the key that holds it:
# `service_time_ms: {distribution: exponential, mean: 20}` is a mean of 20 ms.


class Exponential(_Model):
    """Exponential with the given mean."""

    distribution: Literal["exponential"]
    mean: PositiveFloat


class Deterministic(_Model):
    """Always the same value."""

    distribution: Literal["deterministic"]
    value: NonNegativeFloat


class Lognormal(_Model):
    """Lognormal given by its mean and coefficient of variation (std / mean)."""

    distribution: Literal["lognormal"]
    mean: PositiveFloat
    cv: PositiveFloat


class Uniform(_Model):
    """Uniform between `low` and `high`."""

    distribution: Literal["uniform"]
    low: NonNegativeFloat
    high: PositiveFloat

    @model_validator(mode="after")
    def _high_above_low(self) -> Uniform:
        if self.high <= self.low:
            msg = f"`high` greater than `low` ({self.low}); got high={self.high}"
            raise ValueError(msg)
        return self


class Empirical(_Model):
    """Values drawn with replacement from a column of a CSV or Parquet file."""

    distribution: Literal["empirical"]
    file: str
    column: str
    scale: PositiveFloat = 1.0


class FromTrace(_Model):
    """Each request's own value from a column of the trace it was replayed from.

    The value is ``offset + scale * column``, so a per-token cost can be written
    as ``{distribution: from_trace, column: GeneratedTokens, scale: 20}``.
    """

    distribution: Literal["from_trace"]
    column: str
    scale: float = 1.0
    offset: float = 0.0


Distribution = Annotated[
    Exponential | Deterministic | Lognormal | Uniform | Empirical | FromTrace,
    Field(discriminator="distribution"),
]


# --- topology ------------------------------------------------------------------

NodeKind = Literal["device", "edge_site", "region", "cloud", "cdn"]


# --- money: what pools, links and stored data cost ------------------------------
# Names refer to entries of the price catalogue (`placesim catalog` lists them);
# every figure may be overridden inline.

PricingModel = Literal["on_demand", "committed_1y", "committed_3y", "spot"]


class PoolCost(_Model):
    """How a pool's servers are paid for: rented instances or bought edge hardware.

    Cloud instances (`instance`) are billed per instance-hour for the whole
    simulated window under one pricing model. Edge hardware (`edge_hardware`)
    is bought: its price is amortised per hour over its life, and its energy is
    billed from its idle and busy power draws at `electricity`'s price.
    """

    instance: str | None = None
    instances: PositiveFloat | None = None
    pricing: PricingModel = "on_demand"
    usd_per_h: NonNegativeFloat | None = None
    edge_hardware: str | None = None
    units: PositiveFloat | None = None
    purchase_usd: NonNegativeFloat | None = None
    amortisation_months: PositiveInt | None = None
    idle_w: NonNegativeFloat | None = None
    busy_w: NonNegativeFloat | None = None
    electricity: str | None = None
    usd_per_kwh: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _instance_or_hardware(self) -> PoolCost:
        if (self.instance is None) == (self.edge_hardware is None):
            msg = "exactly one of `instance` or `edge_hardware`"
            raise ValueError(msg)
        return self


class LinkPrice(_Model):
    """The price of bytes crossing a link, from a catalogue transfer entry.

    Bytes leaving the `from` end are priced. Without `from`, both directions
    are priced (each paid by its sender, as between two regions); internet
    egress entries need a `from`, the provider's end, since ingress is free.
    """

    transfer: str
    from_: str | None = Field(default=None, alias="from")
    usd_per_gb: NonNegativeFloat | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Storage(_Model):
    """Data kept at a node (model weights, data sets) in priced object storage."""

    entry: str
    gb: NonNegativeFloat
    what: str = "data"
    reads_per_request: NonNegativeFloat = 0.0
    writes_per_request: NonNegativeFloat = 0.0


# --- serving ---------------------------------------------------------------------
# Token-level service (sim/serving.py): a pool with `serving` times each request
# from its tokens on a (model, hardware) profile of sim/data/profiles.yaml.


class Serving(_Model):
    """How a pool serves a model: the profile it runs and how it batches.

    `batching: continuous` lets requests join a replica's running batch at step
    boundaries; `none` serves one request at a time per replica. A share
    `prefix_reuse_share` of every prompt is found in the KV cache (a shared
    system prompt, say) and not prefilled again.
    """

    model: str
    hardware: str
    batching: Literal["continuous", "none"] = "continuous"
    prefix_reuse_share: Annotated[float, Field(ge=0, lt=1)] = 0.0


class ResponseCache(_Model):
    """A cache of whole responses at a node or in front of a pool.

    A share `hit_ratio` of the requests that meet it are answered by it after
    `hit_latency_ms`, without reaching their pool; the others go on,
    `miss_latency_ms` later (a semantic cache embeds every prompt to look it up).
    """

    kind: Literal["exact", "semantic"]
    hit_ratio: Annotated[float, Field(ge=0, le=1)]
    hit_latency_ms: NonNegativeFloat
    miss_latency_ms: NonNegativeFloat = 0.0


class ModelDelivery(_Model):
    """Model weights fetched from node `from` when a pool gets its first request.

    `artifact_gb` defaults to the weights of the pool's serving profile;
    `load_s` is the time to load them once they have arrived.
    """

    from_: str = Field(alias="from")
    artifact_gb: PositiveFloat | None = None
    load_s: NonNegativeFloat = 0.0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Outage(_Model):
    """A time during which a pool is down: it admits nothing."""

    start_s: NonNegativeFloat
    end_s: PositiveFloat

    @model_validator(mode="after")
    def _ends_after_start(self) -> Outage:
        if self.end_s <= self.start_s:
            msg = f"`end_s` after `start_s` ({self.start_s:g}); got {self.end_s:g}"
            raise ValueError(msg)
        return self


class Pool(_Model):
    """A set of identical servers at a node that serve requests FIFO.

    With `serving`, service times follow from each request's tokens on a
    hardware profile instead of `service_time_ms` (see :mod:`sim.serving`).
    """

    name: str
    hardware: str = "generic"
    servers: PositiveInt = 1
    queue_capacity: NonNegativeInt | Literal["unlimited"] = "unlimited"
    service_time_ms: Distribution | None = None
    cost: PoolCost | None = None
    outages: list[Outage] = []
    serving: Serving | None = None
    cache: ResponseCache | None = None
    model_delivery: ModelDelivery | None = None


class Node(_Model):
    """A place in the topology: a device, an edge site, a region, a cloud or a CDN."""

    name: str
    kind: NodeKind
    pools: list[Pool] = []
    storage: list[Storage] = []
    cache: ResponseCache | None = None
    cdn: str | None = None
    """A catalogue CDN entry pricing the responses delivered through this node."""


class Link(_Model):
    """A two-way network link; both directions have the same latency and bandwidth."""

    a: str
    b: str
    latency_ms: NonNegativeFloat
    bandwidth_mbps: PositiveFloat
    price: str | LinkPrice | None = None

    def link_price(self) -> LinkPrice | None:
        """The price as a :class:`LinkPrice`, whichever way it was written."""
        if isinstance(self.price, str):
            return LinkPrice(transfer=self.price)
        return self.price


class Topology(_Model):
    """Nodes, the links between them and the compute pools they hold."""

    name: str
    description: str | None = None
    nodes: Annotated[list[Node], Field(min_length=1)]
    links: list[Link] = []


# --- scenario ------------------------------------------------------------------


class Poisson(_Model):
    """Poisson arrivals at a fixed mean rate."""

    process: Literal["poisson"]
    rate_per_s: PositiveFloat


class Fixed(_Model):
    """One arrival every `interval_ms`, the first at `start_ms`."""

    process: Literal["fixed"]
    interval_ms: PositiveFloat
    start_ms: NonNegativeFloat = 0.0


class TraceReplay(_Model):
    """Arrivals replayed from a CSV or Parquet trace, relative to its first row.

    Timestamps may be date-times or numbers of seconds. `speedup` divides every
    gap between arrivals, so 10 replays the trace ten times faster.
    """

    process: Literal["trace"]
    file: str
    timestamp_column: str = "TIMESTAMP"
    input_tokens_column: str | None = None
    output_tokens_column: str | None = None
    speedup: PositiveFloat = 1.0


Arrival = Annotated[Poisson | Fixed | TraceReplay, Field(discriminator="process")]


class Placement(_Model):
    """Where a class is served: one pool, a weighted split, a chain, or a policy.

    A chain visits its pools in order (for example preprocessing at the edge,
    then inference in the cloud); the request crosses the route between
    consecutive pools, and the response returns from the last pool. A policy
    (:mod:`sim.policies`) chooses among all the topology's pools by tier,
    queue state or cost; the other keys are its options.
    """

    pool: str | None = None
    split: dict[str, PositiveFloat] | None = None
    chain: Annotated[list[str], Field(min_length=2)] | None = None
    policy: str | None = None
    spill_queue: NonNegativeFloat | None = None
    tiers: list[NodeKind] | None = None
    on_device: bool | None = None
    escalate_share: Annotated[float, Field(ge=0, le=1)] | None = None
    edge_pool: str | None = None
    cloud_pool: str | None = None
    move_data: bool | None = None
    tier: NodeKind | None = None
    data_node: str | None = None
    data_bytes: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Placement:
        kinds = ("pool", "split", "chain", "policy")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none of them"
            msg = f"exactly one of `pool`, `split`, `chain` or `policy`; got {found}"
            raise ValueError(msg)
        options = [k for k in POLICY_OPTIONS if getattr(self, k) is not None]
        if options and self.policy is None:
            msg = f"`policy` with its options ({', '.join(options)}); got no policy"
            raise ValueError(msg)
        return self

    def policy_options(self) -> dict[str, object]:
        """The options given for the policy, by name."""
        return {
            k: getattr(self, k) for k in POLICY_OPTIONS if getattr(self, k) is not None
        }

    def pools(self) -> list[str]:
        """Every pool this placement may send a request to."""
        if self.pool is not None:
            return [self.pool]
        if self.split is not None:
            return list(self.split)
        return list(self.chain or [])


POLICY_OPTIONS = (
    "spill_queue",
    "tiers",
    "on_device",
    "escalate_share",
    "edge_pool",
    "cloud_pool",
    "move_data",
    "tier",
    "data_node",
    "data_bytes",
)
"""Placement keys that are options of a policy rather than a placement kind."""

Size = NonNegativeInt | Distribution


class RequestClass(_Model):
    """One kind of request: where it comes from, how often, how big, where served."""

    name: str
    origin: str | dict[str, PositiveFloat]
    arrival: Arrival
    placement: Placement
    request_bytes: Size = 0
    response_bytes: Size = 0
    input_tokens: Size | None = None
    output_tokens: Size | None = None
    service_time_ms: Distribution | None = None
    slo_ms: PositiveFloat | None = None
    model: str | None = None
    tags: dict[str, str] = {}

    def origins(self) -> dict[str, float]:
        """Origin node names with their weights."""
        if isinstance(self.origin, str):
            return {self.origin: 1.0}
        return dict(self.origin)


class Scenario(_Model):
    """A workload on a topology, with the run settings."""

    name: str
    description: str | None = None
    topology: str
    seed: int = 0
    duration_s: PositiveFloat | None = None
    requests: PositiveInt | None = None
    warmup_s: NonNegativeFloat = 0.0
    slo_ms: PositiveFloat | None = None
    cost_allocation: Literal["requests", "bytes", "busy_time"] = "busy_time"
    catalog: str | None = None
    placements: dict[str, Placement] = {}
    classes: Annotated[list[RequestClass], Field(min_length=1)]


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario with its topology and the folder paths resolve from."""

    scenario: Scenario
    topology: Topology
    scenario_path: Path
    topology_path: Path
    catalog: Catalog

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the scenario relative to the scenario file."""
        return (self.scenario_path.parent / relative).resolve()


# --- loading -------------------------------------------------------------------


def load_topology(path: str | Path) -> Topology:
    """Load and validate a topology file.

    Raises
    ------
    InputError
        With every problem found, each located in the file.
    """
    doc = load_yaml(path)
    topology = validate(doc, Topology)
    _raise_if(
        topology_problems(topology, doc) + cost_problems(topology, doc, load_catalog())
    )
    return topology


def load_scenario(path: str | Path) -> LoadedScenario:
    """Load a scenario file and its topology, and check every rule.

    Parameters
    ----------
    path
        The scenario YAML file. Paths inside it (topology, traces) are relative
        to its folder.

    Returns
    -------
    LoadedScenario
        The scenario and topology, validated together.

    Raises
    ------
    InputError
        With every problem of both files at once.

    Examples
    --------
    >>> loaded = load_scenario("scenarios/three_tier.yaml")  # doctest: +SKIP
    >>> loaded.topology.name  # doctest: +SKIP
    'three_tier'
    """
    doc = load_yaml(path)
    problems: list[Problem] = []
    scenario = _validated(doc, Scenario, problems)
    # Even when the scenario is invalid, its topology and every class that is
    # valid on its own are still checked, so one pass reports all problems.
    catalog = _catalog_of(doc, Path(path), problems)
    topology_path, topology = _topology_of(doc, Path(path), catalog, problems)
    classes = list(enumerate(scenario.classes)) if scenario else _valid_classes(doc)

    if scenario is not None:
        problems += _scenario_problems(scenario, doc)
    for i, cls in classes:
        problems += _class_file_problems(cls, ("classes", i), doc, Path(path).parent)
    if topology is not None:
        problems += _cross_problems(classes, topology, doc)
    # The file the user named comes first, then its topology.
    _raise_if(sorted(problems, key=lambda problem: problem.file != doc.file))

    # No problem means the scenario and its topology were both read.
    assert scenario is not None
    assert topology is not None
    assert topology_path is not None
    assert catalog is not None
    return LoadedScenario(
        scenario, topology, Path(path).resolve(), topology_path, catalog
    )


def _validated(doc: LocatedYaml, model: type[M], problems: list[Problem]) -> M | None:
    """Validate a document, adding its problems to `problems` instead of raising."""
    try:
        return validate(doc, model)
    except InputError as err:
        problems.extend(err.problems)
        return None


def _catalog_of(
    doc: LocatedYaml, scenario_path: Path, problems: list[Problem]
) -> Catalog | None:
    """The price catalogue a scenario names, or the shipped one."""
    name = doc.data.get("catalog") if isinstance(doc.data, dict) else None
    if not isinstance(name, str):
        return load_catalog()
    path = (scenario_path.parent / name).resolve()
    if not path.is_file():
        problems.append(
            doc.problem(("catalog",), "an existing catalogue file", _missing(name))
        )
        return None
    try:
        return load_catalog(path)
    except ValueError as err:
        problems.append(doc.problem(("catalog",), "a valid price catalogue", str(err)))
        return None


def _topology_of(
    doc: LocatedYaml,
    scenario_path: Path,
    catalog: Catalog | None,
    problems: list[Problem],
) -> tuple[Path | None, Topology | None]:
    """Load the topology a scenario names, adding any problem to `problems`."""
    name = doc.data.get("topology") if isinstance(doc.data, dict) else None
    if not isinstance(name, str):
        return None, None
    path = (scenario_path.parent / name).resolve()
    if not path.is_file():
        problems.append(
            doc.problem(
                ("topology",),
                "an existing topology file",
                f"{name!r}, which does not exist",
            )
        )
        return None, None

    try:
        topology_doc = load_yaml(path, display_name=_display(path))
    except InputError as err:
        problems.extend(err.problems)
        return path, None
    topology = _validated(topology_doc, Topology, problems)
    if topology is not None:
        problems += topology_problems(topology, topology_doc)
        if catalog is not None:
            problems += cost_problems(topology, topology_doc, catalog)
    return path, topology


def _valid_classes(doc: LocatedYaml) -> list[tuple[int, RequestClass]]:
    """The classes of an invalid scenario that are valid on their own."""
    raw = doc.data.get("classes") if isinstance(doc.data, dict) else None
    if not isinstance(raw, list):
        return []
    valid = []
    for i, item in enumerate(raw):
        try:
            valid.append((i, RequestClass.model_validate(item)))
        except ValidationError:
            continue
    return valid


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems)


# --- topology rules ------------------------------------------------------------


def topology_problems(topology: Topology, doc: LocatedYaml) -> list[Problem]:
    """Rules a topology must meet beyond its schema: unique names, known endpoints."""
    problems = _duplicate_names(
        [n.name for n in topology.nodes], ("nodes",), "node", doc
    )
    pool_paths = [
        ((n.name, p.name), ("nodes", i, "pools", j))
        for i, n in enumerate(topology.nodes)
        for j, p in enumerate(n.pools)
    ]
    problems += _duplicate_pool_names(pool_paths, doc)
    for i, node in enumerate(topology.nodes):
        for j, pool in enumerate(node.pools):
            if pool.outages and pool.serving is not None:
                problems.append(
                    doc.problem(
                        ("nodes", i, "pools", j, "outages"),
                        "outages on FIFO pools only (not yet on serving pools)",
                        f"{len(pool.outages)} outage(s) on a serving pool",
                    )
                )

    node_names = [n.name for n in topology.nodes]
    for i, link in enumerate(topology.links):
        for end in ("a", "b"):
            name = getattr(link, end)
            if name not in node_names:
                problems.append(
                    _unknown(doc, ("links", i, end), "node", name, node_names)
                )
        if link.a == link.b:
            problems.append(
                doc.problem(("links", i, "b"), "a node other than `a`", repr(link.b))
            )
    problems += serving_problems(topology, doc)
    return problems


def cost_problems(
    topology: Topology, doc: LocatedYaml, catalog: Catalog
) -> list[Problem]:
    """Catalogue names in a topology exist and give the prices it needs."""
    problems: list[Problem] = []
    for i, node in enumerate(topology.nodes):
        for j, pool in enumerate(node.pools):
            if pool.cost is not None:
                where = ("nodes", i, "pools", j, "cost")
                problems += _pool_cost_problems(pool.cost, where, doc, catalog)
        for j, stored in enumerate(node.storage):
            problems += _entry_problems(
                catalog.storage, stored.entry, ("nodes", i, "storage", j, "entry"), doc
            )
        if node.cdn is not None:
            problems += _entry_problems(catalog.cdn, node.cdn, ("nodes", i, "cdn"), doc)
    for i, link in enumerate(topology.links):
        price = link.link_price()
        if price is not None:
            problems += _link_price_problems(
                link, price, ("links", i, "price"), doc, catalog
            )
    return problems


def _entry_problems(
    lookup: Callable[[str], object], name: str, where: Path_, doc: LocatedYaml
) -> list[Problem]:
    try:
        lookup(name)
    except UnknownCatalogEntry as err:
        section = err.section.replace("_", " ")
        known = err.known
        listed = ", ".join(known) if len(known) <= 8 else f"{len(known)} names"
        return [
            doc.problem(
                where,
                f"a {section} entry of the price catalogue ({listed})",
                f"{name!r}, which is not in it",
                err.closest,
            )
        ]
    return []


def _pool_cost_problems(
    cost: PoolCost, where: Path_, doc: LocatedYaml, catalog: Catalog
) -> list[Problem]:
    if cost.instance is not None:
        problems = _entry_problems(
            catalog.instance, cost.instance, (*where, "instance"), doc
        )
        if problems or cost.usd_per_h is not None:
            return problems
        entry = catalog.instance(cost.instance)
        if getattr(entry, f"{cost.pricing}_usd_per_h") is None:
            return [
                doc.problem(
                    (*where, "pricing"),
                    f"a pricing model the catalogue prices {cost.instance} at, "
                    "or an inline `usd_per_h`",
                    f"{cost.pricing!r}, which has no price there",
                )
            ]
        return []

    assert cost.edge_hardware is not None
    problems = _entry_problems(
        catalog.edge_hardware, cost.edge_hardware, (*where, "edge_hardware"), doc
    )
    if cost.electricity is not None:
        problems += _entry_problems(
            catalog.electricity, cost.electricity, (*where, "electricity"), doc
        )
    elif cost.usd_per_kwh is None:
        problems.append(
            doc.problem(
                where,
                "an `electricity` entry or a `usd_per_kwh` price for the energy",
                "neither",
            )
        )
    return problems


def _link_price_problems(
    link: Link, price: LinkPrice, where: Path_, doc: LocatedYaml, catalog: Catalog
) -> list[Problem]:
    path = where if isinstance(link.price, str) else (*where, "transfer")
    problems = _entry_problems(catalog.transfer, price.transfer, path, doc)
    if problems:
        return problems
    if price.from_ is not None and price.from_ not in (link.a, link.b):
        return [
            doc.problem(
                (*where, "from"),
                f"one end of the link ({link.a!r} or {link.b!r})",
                repr(price.from_),
                closest(price.from_, [link.a, link.b]),
            )
        ]
    if (
        price.from_ is None
        and catalog.transfer(price.transfer).kind == "internet_egress"
    ):
        return [
            doc.problem(
                where,
                f"a `from` end: {price.transfer} prices only bytes leaving the "
                "provider for the internet, so say which end is the provider's",
                "no `from`",
            )
        ]
    return []


def _duplicate_names(
    names: list[str], where: Path_, what: str, doc: LocatedYaml
) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for i, name in enumerate(names):
        if name in seen:
            problems.append(
                doc.problem((*where, i, "name"), f"a unique {what} name", repr(name))
            )
        seen.add(name)
    return problems


def _duplicate_pool_names(
    pools: list[tuple[tuple[str, str], Path_]], doc: LocatedYaml
) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for (_node, pool), path in pools:
        if pool in seen:
            problems.append(
                doc.problem(
                    (*path, "name"), "a pool name unique in the topology", repr(pool)
                )
            )
        seen.add(pool)
    return problems


def _unknown(
    doc: LocatedYaml, path: Path_, what: str, name: str, known: list[str]
) -> Problem:
    listed = ", ".join(sorted(known)) if len(known) <= 12 else f"{len(known)} names"
    return doc.problem(
        path,
        f"a known {what} ({listed})",
        f"{what} {name!r}, which is not defined",
        closest(name, known),
    )


# --- scenario rules ------------------------------------------------------------


def _scenario_problems(scenario: Scenario, doc: LocatedYaml) -> list[Problem]:
    problems = _duplicate_names(
        [c.name for c in scenario.classes], ("classes",), "class", doc
    )
    has_trace = any(isinstance(c.arrival, TraceReplay) for c in scenario.classes)
    if scenario.duration_s is None and scenario.requests is None and not has_trace:
        problems.append(
            doc.problem(
                (),
                "`duration_s` or `requests` (or a trace replay, which ends by itself)",
                "neither",
            )
        )
    if scenario.duration_s is not None and scenario.warmup_s >= scenario.duration_s:
        problems.append(
            doc.problem(
                ("warmup_s",),
                f"a warm-up shorter than duration_s ({scenario.duration_s:g} s)",
                f"{scenario.warmup_s:g}",
            )
        )
    return problems


def _class_file_problems(
    cls: RequestClass, where: Path_, doc: LocatedYaml, folder: Path
) -> list[Problem]:
    problems: list[Problem] = []
    trace_columns: list[str] | None = None
    if isinstance(cls.arrival, TraceReplay):
        trace_columns, file_problems = _trace_columns(
            cls.arrival, (*where, "arrival"), doc, folder
        )
        problems += file_problems

    for field, dist in _distributions(cls):
        problems += _distribution_problems(
            dist, (*where, *field), doc, folder, trace_columns
        )
    return problems


def _distributions(cls: RequestClass) -> list[tuple[tuple[str, ...], object]]:
    fields = ("request_bytes", "response_bytes", "input_tokens", "output_tokens")
    found: list[tuple[tuple[str, ...], object]] = [
        ((f,), getattr(cls, f)) for f in fields if isinstance(getattr(cls, f), _Model)
    ]
    if cls.service_time_ms is not None:
        found.append((("service_time_ms",), cls.service_time_ms))
    return found


def _trace_columns(
    arrival: TraceReplay, where: Path_, doc: LocatedYaml, folder: Path
) -> tuple[list[str] | None, list[Problem]]:
    columns = _file_columns(folder / arrival.file)
    if columns is None:
        return None, [
            doc.problem(
                (*where, "file"),
                "an existing CSV or Parquet trace file",
                _missing(arrival.file),
            )
        ]

    problems = []
    named = {
        "timestamp_column": arrival.timestamp_column,
        "input_tokens_column": arrival.input_tokens_column,
        "output_tokens_column": arrival.output_tokens_column,
    }
    for field, column in named.items():
        if column is not None and column not in columns:
            problems.append(
                doc.problem(
                    (*where, field),
                    f"a column of {arrival.file} ({', '.join(columns)})",
                    repr(column),
                    closest(column, columns),
                )
            )
    return columns, problems


def _distribution_problems(
    dist: object,
    where: Path_,
    doc: LocatedYaml,
    folder: Path,
    trace_columns: list[str] | None,
) -> list[Problem]:
    if isinstance(dist, Empirical):
        columns = _file_columns(folder / dist.file)
        if columns is None:
            return [
                doc.problem(
                    (*where, "file"),
                    "an existing CSV or Parquet file",
                    _missing(dist.file),
                )
            ]
        if dist.column not in columns:
            return [
                doc.problem(
                    (*where, "column"),
                    f"a column of {dist.file} ({', '.join(columns)})",
                    repr(dist.column),
                    closest(dist.column, columns),
                )
            ]
    if isinstance(dist, FromTrace):
        if trace_columns is None:
            return [
                doc.problem(
                    (*where, "distribution"),
                    "'from_trace' only in a class whose arrival replays a trace",
                    "'from_trace'",
                )
            ]
        if dist.column not in trace_columns:
            return [
                doc.problem(
                    (*where, "column"),
                    f"a column of the replayed trace ({', '.join(trace_columns)})",
                    repr(dist.column),
                    closest(dist.column, trace_columns),
                )
            ]
    return []


def _missing(name: str) -> str:
    return f"{name!r}, which does not exist"


def _file_columns(path: Path) -> list[str] | None:
    """Column names of a CSV or Parquet file, or None when it cannot be read."""
    if not path.is_file():
        return None
    try:
        if path.suffix.lower() == ".parquet":
            return list(pl.read_parquet_schema(path))
        return pl.read_csv(path, n_rows=0).columns
    except (OSError, pl.exceptions.PolarsError):
        return None


# --- rules across the two files ------------------------------------------------


def _cross_problems(
    classes: list[tuple[int, RequestClass]], topology: Topology, doc: LocatedYaml
) -> list[Problem]:
    node_names = [n.name for n in topology.nodes]
    pool_node = {p.name: n.name for n in topology.nodes for p in n.pools}
    pools_by_name = {p.name: p for n in topology.nodes for p in n.pools}
    graph = nx.Graph()
    graph.add_nodes_from(node_names)
    graph.add_edges_from((link.a, link.b) for link in topology.links)

    problems: list[Problem] = []
    for i, cls in classes:
        where: Path_ = ("classes", i)
        origins = _class_origins(cls, where, doc, node_names, problems)
        pools = _class_pools(cls, where, doc, pool_node, problems)
        if cls.service_time_ms is None:
            problems += _service_time_gaps(cls, where, doc, pools_by_name, pools)
        problems += _reachability(cls, where, doc, graph, origins, pools, pool_node)
        problems += _serving_class_problems(cls, where, doc, pools_by_name, pools)
        if cls.placement.policy is not None:
            problems += _policy_problems(
                cls.placement, (*where, "placement"), doc, topology
            )
    return problems


# Which tiers each static policy needs a pool in.
_POLICY_TIERS = {
    "cloud": ("cloud",),
    "regional": ("region",),
    "edge": ("edge_site",),
    "cascade": ("edge_site", "cloud"),
}


def _policy_problems(
    placement: Placement, where: Path_, doc: LocatedYaml, topology: Topology
) -> list[Problem]:
    """A policy is known, takes the options given, and finds pools to choose."""
    from sim.policies import POLICIES

    name = str(placement.policy)
    if name not in POLICIES:
        known = sorted(POLICIES)
        return [
            doc.problem(
                (*where, "policy"),
                f"a placement policy ({', '.join(known)})",
                repr(name),
                closest(name, known),
            )
        ]

    allowed = POLICIES[name].options
    problems = [
        doc.problem(
            (*where, option),
            f"an option of policy {name!r} ({', '.join(allowed) or 'none'})",
            repr(option),
            closest(option, allowed),
            key=True,
        )
        for option in placement.policy_options()
        if option not in allowed
    ]
    pools = {p.name for n in topology.nodes for p in n.pools}
    nodes = {n.name for n in topology.nodes}
    for option, known, what in (
        ("edge_pool", pools, "pool"),
        ("cloud_pool", pools, "pool"),
        ("data_node", nodes, "node"),
    ):
        value = getattr(placement, option)
        if value is not None and value not in known:
            problems.append(_unknown(doc, (*where, option), what, value, sorted(known)))

    tiers_with_pools = {n.kind for n in topology.nodes if n.pools}
    needed = _POLICY_TIERS.get(name, ())
    if name == "edge" and placement.on_device:
        needed = ()
    missing = [t for t in needed if t not in tiers_with_pools]
    if missing or not tiers_with_pools:
        problems.append(
            doc.problem(
                (*where, "policy"),
                f"pools at {', '.join(missing or ['any'])} nodes for policy {name!r}",
                "none in the topology",
            )
        )
    return problems


def _class_origins(
    cls: RequestClass,
    where: Path_,
    doc: LocatedYaml,
    node_names: list[str],
    problems: list[Problem],
) -> list[str]:
    known = []
    for name in cls.origins():
        if name in node_names:
            known.append(name)
            continue
        path = (
            (*where, "origin")
            if isinstance(cls.origin, str)
            else (*where, "origin", name)
        )
        problems.append(_unknown(doc, path, "node", name, node_names))
    return known


def _class_pools(
    cls: RequestClass,
    where: Path_,
    doc: LocatedYaml,
    pool_node: dict[str, str],
    problems: list[Problem],
) -> list[str]:
    known = []
    placement = cls.placement
    for j, name in enumerate(placement.pools()):
        if name in pool_node:
            known.append(name)
            continue
        if placement.pool is not None:
            path: Path_ = (*where, "placement", "pool")
        elif placement.split is not None:
            path = (*where, "placement", "split", name)
        else:
            path = (*where, "placement", "chain", j)
        problems.append(_unknown(doc, path, "pool", name, list(pool_node)))
    return known


def _service_time_gaps(
    cls: RequestClass,
    where: Path_,
    doc: LocatedYaml,
    pools_by_name: dict[str, Pool],
    pools: list[str],
) -> list[Problem]:
    missing = [
        p
        for p in pools
        if pools_by_name[p].service_time_ms is None and pools_by_name[p].serving is None
    ]
    if not missing:
        return []
    return [
        doc.problem(
            where,
            "a `service_time_ms` on the class or on every pool it uses",
            f"none on pool {', '.join(repr(p) for p in missing)}",
        )
    ]


def _reachability(
    cls: RequestClass,
    where: Path_,
    doc: LocatedYaml,
    graph: nx.Graph,
    origins: list[str],
    pools: list[str],
    pool_node: dict[str, str],
) -> list[Problem]:
    problems = []
    hops = [(o, pool_node[p], p) for o in origins for p in pools[:1]]
    if cls.placement.chain is not None:
        hops += [
            (pool_node[a], pool_node[b], b)
            for a, b in zip(pools, pools[1:], strict=False)
        ]
    else:
        hops = [(o, pool_node[p], p) for o in origins for p in pools]

    for source, target, pool in hops:
        if not nx.has_path(graph, source, target):
            problems.append(
                doc.problem(
                    (*where, "placement"),
                    f"pool {pool!r} reachable from {source!r} over the links",
                    f"no route from {source!r} to node {target!r}",
                )
            )
    return problems


# --- serving rules -------------------------------------------------------------


def serving_problems(topology: Topology, doc: LocatedYaml) -> list[Problem]:
    """Serving pools run a profiled model that fits; weights come over a route."""
    graph = nx.Graph()
    graph.add_nodes_from(n.name for n in topology.nodes)
    graph.add_edges_from((link.a, link.b) for link in topology.links)
    problems: list[Problem] = []
    for i, node in enumerate(topology.nodes):
        for j, pool in enumerate(node.pools):
            where: Path_ = ("nodes", i, "pools", j)
            if pool.serving is not None:
                problems += _profile_problems(pool.serving, (*where, "serving"), doc)
                if pool.service_time_ms is not None:
                    problems.append(
                        doc.problem(
                            (*where, "service_time_ms"),
                            "no `service_time_ms` on a pool with `serving`, whose "
                            "service follows from each request's tokens",
                            "a service time",
                        )
                    )
            if pool.model_delivery is not None:
                problems += _delivery_problems(
                    pool, node.name, (*where, "model_delivery"), doc, graph
                )
    return problems


def _profile_problems(
    serving: Serving, where: Path_, doc: LocatedYaml
) -> list[Problem]:
    book = load_profiles()
    if serving.model not in book.models:
        model_path = (*where, "model")
        return [_unknown(doc, model_path, "model", serving.model, list(book.models))]
    if serving.hardware not in book.hardware:
        hardware_path = (*where, "hardware")
        known = list(book.hardware)
        return [_unknown(doc, hardware_path, "hardware", serving.hardware, known)]
    if (serving.model, serving.hardware) in book.pairs():
        return []

    model = book.get_model(serving.model)
    memory_gb = book.get_hardware(serving.hardware).memory_gb
    profiled = [h for m, h in book.pairs() if m == serving.model]
    if not book.fits(serving.model, serving.hardware):
        return [
            doc.problem(
                (*where, "hardware"),
                f"hardware that can hold {serving.model} "
                f"({model.weights_gb():.1f} GB of {model.default_precision} weights; "
                f"profiled on {', '.join(profiled)})",
                f"{serving.hardware!r} with {memory_gb:g} GB: the model does not fit",
            )
        ]
    return [
        doc.problem(
            (*where, "hardware"),
            f"hardware with a serving profile for {serving.model} "
            f"({', '.join(profiled)})",
            f"{serving.hardware!r}, which has none",
        )
    ]


def _delivery_problems(
    pool: Pool, node: str, where: Path_, doc: LocatedYaml, graph: nx.Graph
) -> list[Problem]:
    delivery = pool.model_delivery
    assert delivery is not None
    problems: list[Problem] = []
    if delivery.from_ not in graph:
        known = list(graph.nodes)
        problems.append(_unknown(doc, (*where, "from"), "node", delivery.from_, known))
    elif not nx.has_path(graph, delivery.from_, node):
        problems.append(
            doc.problem(
                (*where, "from"),
                f"a node with a route to {node!r}, where the pool is",
                f"{delivery.from_!r}, which has no route there",
            )
        )
    if delivery.artifact_gb is None and pool.serving is None:
        problems.append(
            doc.problem(
                where,
                "an `artifact_gb`, or a `serving` block on the pool whose profile "
                "gives the size of the weights",
                "neither",
            )
        )
    return problems


def _serving_class_problems(
    cls: RequestClass,
    where: Path_,
    doc: LocatedYaml,
    pools_by_name: dict[str, Pool],
    pools: list[str],
) -> list[Problem]:
    serving = [p for p in pools if pools_by_name[p].serving is not None]
    if not serving:
        return []
    arrival = cls.arrival
    trace = arrival if isinstance(arrival, TraceReplay) else None
    given = {
        "input_tokens": cls.input_tokens is not None
        or (trace is not None and trace.input_tokens_column is not None),
        "output_tokens": cls.output_tokens is not None
        or (trace is not None and trace.output_tokens_column is not None),
    }
    missing = [f"`{name}`" for name, present in given.items() if not present]
    if not missing:
        return []
    return [
        doc.problem(
            where,
            "`input_tokens` and `output_tokens` (numbers, distributions or trace "
            f"columns) on a class served by serving pool "
            f"{', '.join(repr(p) for p in serving)}",
            f"no {' and no '.join(missing)}",
        )
    ]


# --- entry points for the command line -------------------------------------------


def with_overrides(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
) -> LoadedScenario:
    """The same scenario with its seed, request count or duration replaced.

    Giving `requests` alone drops the duration, and giving `duration_s` alone
    drops the request count, so the override is what ends the run.
    """
    update: dict[str, object] = {}
    if seed is not None:
        update["seed"] = seed
    if requests is not None:
        update["requests"] = requests
        update["duration_s"] = duration_s
    elif duration_s is not None:
        update["duration_s"] = duration_s
        update["requests"] = None
    if not update:
        return loaded
    scenario = loaded.scenario.model_copy(update=update)
    return LoadedScenario(
        scenario,
        loaded.topology,
        loaded.scenario_path,
        loaded.topology_path,
        loaded.catalog,
    )


def check_file(path: str | Path) -> str:
    """Validate a scenario or topology file, telling them apart by their keys.

    Returns
    -------
    str
        ``"scenario"`` or ``"topology"``.

    Raises
    ------
    InputError
        With every problem of the file (and of a scenario's topology).
    """
    doc = load_yaml(path)
    keys = doc.data if isinstance(doc.data, dict) else {}
    if "classes" not in keys and "topology" not in keys:
        load_topology(path)
        return "topology"
    load_scenario(path)
    return "scenario"
