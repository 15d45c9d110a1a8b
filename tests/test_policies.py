"""Each placement policy's choice on a small hand-made set of candidates."""

from __future__ import annotations

import pytest

from sim.policies import (
    POLICIES,
    Candidate,
    PolicyContext,
    UnknownPolicy,
    policy_class,
)

# One origin `user`; an edge pool 5 ms away, a region pool 20 ms away and a
# cloud pool 40 ms away (one way), each serving in 10, 20 and 30 ms.
CANDIDATES = [
    Candidate("edge-gpu", 0, "edge", "edge_site", 1, 0.010, usd_per_request=0.003),
    Candidate("region-gpu", 1, "region", "region", 4, 0.020, usd_per_request=0.001),
    Candidate("cloud-gpu", 2, "cloud", "cloud", 8, 0.030, usd_per_request=0.0005),
]
ROUTE_S = {0: 0.005, 1: 0.020, 2: 0.040}


def context(
    in_system: dict[int, int] | None = None,
    down: set[int] | None = None,
    slo_s: float | None = None,
    candidates: list[Candidate] | None = None,
) -> PolicyContext:
    state = in_system or {}
    return PolicyContext(
        candidates=candidates or CANDIDATES,
        route_s=lambda origin, pool, size: ROUTE_S[pool],
        in_system=lambda pool, now: state.get(pool, 0),
        up=lambda pool, now: pool not in (down or set()),
        slo_s=slo_s,
    )


def choose(name: str, ctx: PolicyContext, **options: float | str) -> int:
    return policy_class(name)(ctx, **options).choose(0.0, "user", 0.0, 0.0)


@pytest.mark.parametrize(
    ("name", "expected"), [("cloud", 2), ("regional", 1), ("edge", 0)]
)
def test_tier_policies_pick_the_nearest_pool_of_their_tier(
    name: str, expected: int
) -> None:
    assert policy_class(name)(context()).static_chain("user") == [expected]


def test_edge_on_device_prefers_the_origins_own_pool() -> None:
    own = Candidate("phone-npu", 3, "user", "device", 1, 0.05)
    ctx = context(candidates=[*CANDIDATES, own])
    ROUTE_S[3] = 0.0
    assert policy_class("edge")(ctx, on_device=True).static_chain("user") == [3]
    assert policy_class("edge")(ctx).static_chain("user") == [0]


def test_hybrid_stays_at_the_edge_while_it_has_room() -> None:
    assert choose("hybrid", context()) == 0


def test_hybrid_spills_to_the_region_when_the_edge_queue_is_full() -> None:
    # spill_queue=1: a newcomer stays while fewer than one request waits.
    assert choose("hybrid", context({0: 2}), spill_queue=1) == 1  # one waits
    assert choose("hybrid", context({0: 1}), spill_queue=1) == 0  # none waits


def test_hybrid_spills_past_a_pool_that_is_down_or_does_not_fit() -> None:
    assert choose("hybrid", context(down={0})) == 1
    unfit = [Candidate("edge-gpu", 0, "edge", "edge_site", 1, 0.01, fits=False)]
    assert choose("hybrid", context(candidates=unfit + CANDIDATES[1:])) == 1


def test_hybrid_falls_back_to_the_farthest_tier_when_all_are_full() -> None:
    assert choose("hybrid", context({0: 9, 1: 9, 2: 99})) == 2


def test_latency_aware_takes_the_lowest_expected_completion() -> None:
    # Idle: edge 5+10+5 = 20 ms beats region 60 ms and cloud 110 ms.
    assert choose("latency_aware", context()) == 0
    # Ten waiting at the edge add 10 x 10 ms: the region (60 ms) wins.
    assert choose("latency_aware", context({0: 11})) == 1


def test_cost_aware_takes_the_cheapest_pool_within_the_slo() -> None:
    # All meet 200 ms: the cloud is cheapest per request.
    assert choose("cost_aware", context(slo_s=0.2)) == 2
    # Only edge (20 ms) and region (60 ms) meet 70 ms: region is cheaper.
    assert choose("cost_aware", context(slo_s=0.07)) == 1
    # None meets 1 ms: the fastest.
    assert choose("cost_aware", context(slo_s=0.001)) == 0


def test_cascade_chains_edge_then_cloud() -> None:
    policy = policy_class("cascade")(context(), escalate_share=0.3)
    assert policy.static_chain("user") == [0, 2]
    assert policy.escalate_share == 0.3


def test_data_locality_runs_where_the_data_lives_unless_told_to_move_it() -> None:
    stays = policy_class("data_locality")(context(), data_node="region")
    moves = policy_class("data_locality")(
        context(), data_node="region", move_data=True, tier="cloud"
    )
    assert stays.static_chain("user") == [1]
    assert moves.static_chain("user") == [2]


def test_an_unknown_policy_lists_the_known_ones_and_the_closest() -> None:
    with pytest.raises(UnknownPolicy) as caught:
        policy_class("hybird")
    assert caught.value.closest == "hybrid"
    assert caught.value.known == sorted(POLICIES)
