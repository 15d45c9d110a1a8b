"""Policies put to work: candidates, plans and choices for the engine.

For every class placed by a policy, this builds the policy's view of the
topology (:class:`sim.policies.Candidate` for each reachable pool, with its
tier, mean service time for the class, whether the class's model fits and a
marginal cost per request), then either resolves it once per origin (static
policies) or keeps it to be asked at each request's departure (dynamic ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim.cost import pool_usd_per_h
from sim.policies import Candidate, Cascade, Policy, PolicyContext, policy_class
from sim.schema import (
    Deterministic,
    Empirical,
    Exponential,
    FromTrace,
    Lognormal,
    Pool,
    RequestClass,
    Uniform,
)
from sim.serving import batch_slots, profile_of
from sim.workload import PolicyPlan

if TYPE_CHECKING:
    from sim.engine import Engine

__all__ = ["Placing"]


class Placing:
    """The policies of a run's classes, with what they need from the engine.

    Attributes
    ----------
    plans
        How each policy-placed class (by position) draws its pools.
    dynamic
        Positions of the classes whose policy decides at departure time.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.plans: dict[int, PolicyPlan] = {}
        self.dynamic: set[int] = set()
        self._policies: dict[int, Policy] = {}
        self._data: dict[int, tuple[int, int]] = {}
        node_index = {name: i for i, name in enumerate(engine.node_names)}

        for k, cls in enumerate(engine.loaded.scenario.classes):
            placement = cls.placement
            if placement.policy is None:
                continue
            policy = policy_class(placement.policy)(
                self._context(cls), **placement.policy_options()
            )
            self._policies[k] = policy
            if placement.data_node is not None and placement.data_bytes:
                self._data[k] = (node_index[placement.data_node], placement.data_bytes)
            if policy.dynamic:
                self.dynamic.add(k)
                usable = {i for o in cls.origins() for i in policy.usable_pools(o)}
                self.plans[k] = PolicyPlan(candidates=sorted(usable))
                continue
            chains = {
                node_index[origin]: policy.static_chain(origin)
                for origin in cls.origins()
            }
            share = policy.escalate_share if isinstance(policy, Cascade) else None
            self.plans[k] = PolicyPlan(chains=chains, escalate_share=share)

    def provisioned(self) -> tuple[str, ...]:
        """Pools any class may use: named ones, policy chains and candidates."""
        engine = self._engine
        names = set()
        for k, cls in enumerate(engine.loaded.scenario.classes):
            plan = self.plans.get(k)
            if plan is None:
                names |= set(cls.placement.pools())
            elif plan.candidates is not None:
                names |= {engine.pool_names[i] for i in plan.candidates}
            else:
                assert plan.chains is not None
                names |= {
                    engine.pool_names[i]
                    for chain in plan.chains.values()
                    for i in chain
                }
        return tuple(p for p in engine.pool_names if p in names)

    def previous_pools(self) -> tuple[tuple[str, str, int, str], ...]:
        """(class, origin, stage, previous pool) for every chained stage."""
        engine = self._engine
        out = []
        for k, cls in enumerate(engine.loaded.scenario.classes):
            plan = self.plans.get(k)
            if plan is not None and plan.chains is not None:
                chains = {
                    engine.node_names[o]: [engine.pool_names[i] for i in c]
                    for o, c in plan.chains.items()
                }
            elif cls.placement.chain is not None:
                chains = dict.fromkeys(cls.origins(), list(cls.placement.chain))
            else:
                continue
            for origin, chain in chains.items():
                out += [
                    (cls.name, origin, s, chain[s - 1]) for s in range(1, len(chain))
                ]
        return tuple(out)

    def choose(
        self, class_index: int, now_s: float, origin: int, req_b: float, resp_b: float
    ) -> int:
        """The pool a dynamic policy picks for a request leaving `origin` now."""
        origin_name = self._engine.node_names[origin]
        return self._policies[class_index].choose(now_s, origin_name, req_b, resp_b)

    def data_delay_s(self, class_index: int, pools: np.ndarray) -> np.ndarray | float:
        """Time to move a class's data set to each request's pool (0 if there)."""
        if class_index not in self._data:
            return 0.0
        data_node, data_bytes = self._data[class_index]
        nodes = np.full(pools.shape, data_node)
        routes = self._engine._routes
        return routes.delay_s(nodes, pools, np.full(pools.shape, float(data_bytes)))

    # --- the policy's view --------------------------------------------------------

    def _context(self, cls: RequestClass) -> PolicyContext:
        engine = self._engine
        reachable = set(engine._routes.reachable_pools(list(cls.origins())))
        node_kind = {n.name: n.kind for n in engine.loaded.topology.nodes}
        pool_node = engine.network.pool_node
        candidates = [
            Candidate(
                pool=name,
                index=i,
                node=pool_node[name],
                tier=node_kind[pool_node[name]],
                servers=spec.servers * batch_slots(spec),
                mean_service_s=_mean_service_s(cls, spec, engine),
                fits=_fits(cls, spec),
                usd_per_request=_usd_per_request(cls, spec, engine),
            )
            for i, (name, spec) in enumerate(engine.network.pools.items())
            if name in reachable
        ]
        node_index = {name: i for i, name in enumerate(engine.node_names)}
        routes = engine._routes
        slo_ms = cls.slo_ms or engine.loaded.scenario.slo_ms
        return PolicyContext(
            candidates=candidates,
            route_s=lambda origin, pool, size: routes.delay_one_s(
                node_index[origin], pool, size
            ),
            in_system=lambda pool, now: _in_system(engine.pools[pool], now),
            up=lambda pool, now: bool(engine.pools[pool].up(now)),
            slo_s=slo_ms / 1000.0 if slo_ms is not None else None,
        )


def _in_system(pool: Any, now_s: float) -> int:
    return int(pool.in_system(now_s))


def _fits(cls: RequestClass, pool: Pool) -> bool:
    """A pool can serve the class: it has a service time and the right model."""
    if pool.serving is not None:
        return cls.model is None or pool.serving.model == cls.model
    return cls.service_time_ms is not None or pool.service_time_ms is not None


def _mean_service_s(cls: RequestClass, pool: Pool, engine: Engine) -> float:
    if pool.serving is not None:
        profile = profile_of(pool)
        tokens_in = _mean_count(cls.input_tokens, engine, cls)
        tokens_out = _mean_count(cls.output_tokens, engine, cls)
        return profile.prefill_s(round(tokens_in)) + max(tokens_out, 1.0) * (
            profile.decode_step_s(1)
        )
    dist = cls.service_time_ms or pool.service_time_ms
    return _mean(dist, engine, cls) / 1000.0 if dist is not None else float("inf")


def _mean_count(spec: object, engine: Engine, cls: RequestClass) -> float:
    if spec is None:
        return 0.0
    if isinstance(spec, int):
        return float(spec)
    return _mean(spec, engine, cls)


def _mean(dist: object, engine: Engine, cls: RequestClass) -> float:
    """The mean of a distribution as the scenario writes it."""
    if isinstance(dist, Exponential | Lognormal):
        return dist.mean
    if isinstance(dist, Deterministic):
        return dist.value
    if isinstance(dist, Uniform):
        return (dist.low + dist.high) / 2
    stream = next(s for s in engine._streams if s.cls is cls)
    if isinstance(dist, Empirical):
        return float(stream._empirical_values(dist).mean()) * dist.scale
    if isinstance(dist, FromTrace):
        column = stream._trace.columns[dist.column] if stream._trace else np.zeros(1)
        return dist.offset + dist.scale * float(np.nanmean(column))
    return 0.0


def _usd_per_request(cls: RequestClass, pool: Pool, engine: Engine) -> float:
    """The compute a request occupies, at the pool's hourly price per server."""
    hourly = pool_usd_per_h(pool, engine.loaded.catalog)
    mean_s = _mean_service_s(cls, pool, engine)
    if not np.isfinite(mean_s):
        return float("inf")
    return hourly / pool.servers * mean_s / 3600.0
