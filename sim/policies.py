"""Placement policies: which pool serves a request, one small class each.

A policy sees the request's origin and the *candidates*: every pool in the
topology with its tier (the kind of node that holds it), its servers, its mean
service time for the request's class, whether the class's model fits it, and a
marginal cost per request. Policies are chosen by name in a scenario::

    placement: {policy: hybrid, spill_queue: 4}

Static policies (``cloud``, ``regional``, ``edge``, ``cascade``,
``data_locality``) depend only on the origin, so the engine resolves them when
it draws a batch of arrivals. Dynamic ones (``hybrid``, ``latency_aware``,
``cost_aware``) look at the pools' current state and are asked at the moment
the request leaves its origin.

Estimates used by the dynamic policies: a pool with ``n`` requests in it and
``c`` servers of mean service ``s`` makes a newcomer wait about
``max(0, n - c + 1) * s / c``; the expected completion adds the route delays
both ways and ``s``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from sim.errors import closest

__all__ = [
    "POLICIES",
    "Candidate",
    "Policy",
    "PolicyContext",
    "UnknownPolicy",
    "policy_class",
]

TIER_ORDER = ("device", "edge_site", "region", "cloud")
"""Tiers from nearest the user to farthest, the order spill-over follows."""


@dataclass(frozen=True)
class Candidate:
    """A pool a policy may choose, as seen by one request class.

    Attributes
    ----------
    pool, index
        The pool's name and its position in the engine's pool list.
    node, tier
        The node holding it and that node's kind.
    servers
        Parallel servers.
    mean_service_s
        Mean service time of the class's requests at this pool.
    fits
        False when the class's model cannot run on this pool's hardware.
    usd_per_request
        Marginal cost of serving one request here: the compute capacity it
        occupies, priced at the pool's hourly cost.
    """

    pool: str
    index: int
    node: str
    tier: str
    servers: int
    mean_service_s: float
    fits: bool = True
    usd_per_request: float = 0.0


@dataclass
class PolicyContext:
    """What a policy may look at.

    Attributes
    ----------
    candidates
        Every pool, with the class's view of it.
    route_s
        ``route_s(origin_node, pool_index, size_bytes)``: the one-way delay.
    transfer_usd
        ``transfer_usd(origin_node, pool_index, size_bytes)``: the price of the
        bytes crossing priced links on that route (first-tier rates).
    in_system
        ``in_system(pool_index, now_s)``: requests queued or in service.
    up
        ``up(pool_index, now_s)``: False during the pool's outages.
    slo_s
        The class's latency target, or None.
    """

    candidates: Sequence[Candidate]
    route_s: Callable[[str, int, float], float]
    transfer_usd: Callable[[str, int, float], float] = lambda *_: 0.0
    in_system: Callable[[int, float], int] = lambda *_: 0
    up: Callable[[int, float], bool] = lambda *_: True
    slo_s: float | None = None


class UnknownPolicy(LookupError):
    """A placement policy name that is not registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.known = sorted(POLICIES)
        self.closest = closest(name, self.known)
        super().__init__(f"unknown placement policy {name!r}")


class Policy:
    """Base of every placement policy.

    Parameters
    ----------
    context
        The candidates and the state a policy may consult.
    options
        The policy's own settings from the scenario (``spill_queue``, ...).
    """

    name: ClassVar[str] = ""
    dynamic: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: PolicyContext, **options: object) -> None:
        self.context = context
        self.settings = options

    def static_chain(self, origin: str) -> list[int]:
        """Pools (indices) a request from `origin` visits, in order."""
        raise NotImplementedError

    def choose(
        self, now_s: float, origin: str, request_bytes: float, response_bytes: float
    ) -> int:
        """The pool (index) for a request leaving `origin` at `now_s`."""
        raise NotImplementedError

    def usable_pools(self, origin: str) -> list[int]:
        """Every pool a dynamic policy may choose for `origin` (to provision)."""
        return [c.index for c in self._eligible()]

    # --- helpers shared by the policies -------------------------------------------

    def _eligible(self, tier: str | None = None) -> list[Candidate]:
        return [
            c
            for c in self.context.candidates
            if c.fits and (tier is None or c.tier == tier)
        ]

    def _nearest(self, origin: str, tier: str) -> Candidate | None:
        """The eligible pool of `tier` with the shortest route from `origin`."""
        pools = self._eligible(tier)
        if not pools:
            return None
        return min(
            pools, key=lambda c: (self.context.route_s(origin, c.index, 0.0), c.pool)
        )

    def _completion_s(
        self,
        candidate: Candidate,
        now_s: float,
        origin: str,
        request_bytes: float,
        response_bytes: float,
    ) -> float:
        ctx = self.context
        queued = ctx.in_system(candidate.index, now_s) - candidate.servers + 1
        wait_s = max(0, queued) * candidate.mean_service_s / candidate.servers
        return (
            ctx.route_s(origin, candidate.index, request_bytes)
            + wait_s
            + candidate.mean_service_s
            + ctx.route_s(origin, candidate.index, response_bytes)
        )


class _TierOnly(Policy):
    tier: ClassVar[str] = ""

    def static_chain(self, origin: str) -> list[int]:
        """The nearest pool of the policy's tier."""
        chosen = self._nearest(origin, self.tier)
        if chosen is None:
            msg = f"no pool at a {self.tier} node can serve this class"
            raise LookupError(msg)
        return [chosen.index]


class CloudOnly(_TierOnly):
    """Every request goes to the nearest pool at a cloud node."""

    name = "cloud"
    tier = "cloud"


class Regional(_TierOnly):
    """Every request goes to the nearest pool at a region node."""

    name = "regional"
    tier = "region"


class EdgeOnly(Policy):
    """The nearest edge-site pool, or the device's own pool with `on_device`."""

    name = "edge"
    options = ("on_device",)

    def static_chain(self, origin: str) -> list[int]:
        """The origin's own pool (on_device) or the nearest edge-site pool."""
        if self.settings.get("on_device"):
            own = [c for c in self._eligible("device") if c.node == origin]
            if own:
                return [own[0].index]
        chosen = self._nearest(origin, "edge_site")
        if chosen is None:
            msg = "no pool at an edge_site node can serve this class"
            raise LookupError(msg)
        return [chosen.index]


class HybridSpill(Policy):
    """Edge first; spill to the next tier when the local pool cannot take it.

    The nearest pool of each tier is tried from the edge outwards (device,
    edge site, region, cloud). A pool is passed over when the class's model
    does not fit it, when it is down, or when ``spill_queue`` or more requests
    already wait there (default 0: spill as soon as every server is busy).
    The farthest tier takes whatever is left. ``tiers`` limits the ladder
    (for example ``[edge_site, cloud]``).
    """

    name = "hybrid"
    dynamic = True
    options = ("spill_queue", "tiers")

    def choose(
        self, now_s: float, origin: str, request_bytes: float, response_bytes: float
    ) -> int:
        """The first tier's pool that is up, fits and has room."""
        spill_queue = float(self.settings.get("spill_queue", 0))
        ladder = self._ladder(origin)
        if not ladder:
            msg = "no pool can serve this class"
            raise LookupError(msg)
        ctx = self.context
        for candidate in ladder:
            waiting = ctx.in_system(candidate.index, now_s) - candidate.servers
            if ctx.up(candidate.index, now_s) and waiting < spill_queue:
                return candidate.index
        return ladder[-1].index

    def usable_pools(self, origin: str) -> list[int]:
        """The nearest pool of each tier on the ladder."""
        return [c.index for c in self._ladder(origin)]

    def _ladder(self, origin: str) -> list[Candidate]:
        tiers = self.settings.get("tiers") or TIER_ORDER
        nearest = (self._nearest(origin, t) for t in TIER_ORDER if t in tiers)  # type: ignore[operator]
        return [c for c in nearest if c is not None]


class LatencyAware(Policy):
    """The pool with the lowest expected completion time right now."""

    name = "latency_aware"
    dynamic = True

    def choose(
        self, now_s: float, origin: str, request_bytes: float, response_bytes: float
    ) -> int:
        """Argmin of route delays + expected wait + mean service."""
        up = [c for c in self._eligible() if self.context.up(c.index, now_s)]
        pools = up or self._eligible()
        best = min(
            pools,
            key=lambda c: (
                self._completion_s(c, now_s, origin, request_bytes, response_bytes),
                c.pool,
            ),
        )
        return best.index


class CostAware(Policy):
    """The cheapest pool expected to meet the SLO; the fastest if none will.

    A pool's price for one request is its marginal compute cost plus the
    transfer of the request and response over priced links.
    """

    name = "cost_aware"
    dynamic = True

    def choose(
        self, now_s: float, origin: str, request_bytes: float, response_bytes: float
    ) -> int:
        """Cheapest among pools whose expected completion is within the SLO."""
        ctx = self.context
        pools = [
            c for c in self._eligible() if ctx.up(c.index, now_s)
        ] or self._eligible()
        timed = [
            (self._completion_s(c, now_s, origin, request_bytes, response_bytes), c)
            for c in pools
        ]
        slo_s = ctx.slo_s
        meeting = [c for t, c in timed if slo_s is None or t <= slo_s]
        if not meeting:
            return min(timed, key=lambda tc: (tc[0], tc[1].pool))[1].index

        def price(c: Candidate) -> float:
            bytes_usd = ctx.transfer_usd(
                origin, c.index, request_bytes + response_bytes
            )
            return c.usd_per_request + bytes_usd

        return min(meeting, key=lambda c: (price(c), c.pool)).index


class Cascade(Policy):
    """A small model at the edge answers; a share escalates to the cloud.

    Every request is served by the nearest edge-site pool; a share
    ``escalate_share`` (drawn per request) then continues to the nearest cloud
    pool, paying for both visits. With ``edge_pool`` and ``cloud_pool`` the
    two pools are named instead of found.
    """

    name = "cascade"
    options = ("escalate_share", "edge_pool", "cloud_pool")

    def static_chain(self, origin: str) -> list[int]:
        """The edge pool, then the cloud pool (the engine draws who escalates)."""
        return [
            self._pick(origin, "edge_pool", "edge_site"),
            self._pick(origin, "cloud_pool", "cloud"),
        ]

    def _pick(self, origin: str, option: str, tier: str) -> int:
        named = self.settings.get(option)
        if named is not None:
            return next(c.index for c in self.context.candidates if c.pool == named)
        chosen = self._nearest(origin, tier)
        if chosen is None:
            msg = f"no pool at a {tier} node for the cascade"
            raise LookupError(msg)
        return chosen.index

    @property
    def escalate_share(self) -> float:
        """Share of requests that continue to the large model."""
        return float(self.settings.get("escalate_share", 0.2))


class DataLocality(Policy):
    """Run where the class's data set lives, or move the data to the compute.

    With ``move_data: false`` (the default) the request runs on a pool at the
    data's node when one can serve it; otherwise, or with ``move_data: true``,
    it runs at the nearest pool of ``tier`` (default cloud) and the data set's
    bytes cross the network to it first, delaying and paying for the request.
    """

    name = "data_locality"
    options = ("move_data", "tier", "data_node", "data_bytes")

    def static_chain(self, origin: str) -> list[int]:
        """The pool at the data's node, or the nearest pool of `tier`."""
        data_node = self.settings.get("data_node")
        if not self.settings.get("move_data"):
            local = [c for c in self._eligible() if c.node == data_node]
            if local:
                return [min(local, key=lambda c: c.pool).index]
        chosen = self._nearest(origin, str(self.settings.get("tier", "cloud")))
        if chosen is None:
            msg = "no pool can serve this class"
            raise LookupError(msg)
        return [chosen.index]


POLICIES: dict[str, type[Policy]] = {
    p.name: p
    for p in (
        CloudOnly,
        Regional,
        EdgeOnly,
        HybridSpill,
        LatencyAware,
        CostAware,
        Cascade,
        DataLocality,
    )
}
"""Every placement policy by the name a scenario uses."""


def policy_class(name: str) -> type[Policy]:
    """The policy registered under `name`.

    Raises
    ------
    UnknownPolicy
        With the known names and the closest one.

    Examples
    --------
    >>> policy_class("hybrid").__name__
    'HybridSpill'
    """
    try:
        return POLICIES[name]
    except KeyError:
        raise UnknownPolicy(name) from None
