"""Checks of the queueing-theory reference module against known values.

Expected numbers come from textbook tables or from hand computations shown in
the comments, and some are recomputed here by an independent route (exact
rational sums, log-space sums, numerical integration, Monte Carlo) rather than
by calling the same formula twice.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from queueing_theory import (
    batch_means,
    erlang_b,
    erlang_c,
    md1_mean_wait,
    mg1_mean_wait,
    mm1,
    mm1_relaxation_time,
    mmc,
    mmck,
    proportion_ci,
    replication_ci,
    tandem_mm1,
)
from scipy import integrate, signal, special, stats

# Coverage checks: with R = 400 repetitions the number of intervals covering
# the truth is Binomial(400, confidence) if the helper is right.  We accept
# the central 99.9 % range of that law (P(reject | correct) <= 0.001):
# confidence 0.99 -> [388, 400]; confidence 0.90 -> [339, 378].
REPETITIONS = 400
COVERAGE_ALPHA = 0.001


def _coverage_range(confidence: float) -> tuple[int, int]:
    """Acceptance range for the covered count under Binomial(R, confidence)."""
    law = stats.binom(REPETITIONS, confidence)
    low = int(law.ppf(COVERAGE_ALPHA / 2))
    high = int(law.isf(COVERAGE_ALPHA / 2))
    return low, high


def _covered(means: np.ndarray, halves: np.ndarray, truth: float) -> int:
    return int(np.sum(np.abs(means - truth) <= halves))


# ---------------------------------------------------------------------------
# Erlang B / C
# ---------------------------------------------------------------------------


def _erlang_b_exact(load: int, servers: int) -> Fraction:
    """Erlang B from the defining ratio, in exact rational arithmetic."""
    terms = [Fraction(load**k, math.factorial(k)) for k in range(servers + 1)]
    return terms[-1] / sum(terms)


def _erlang_c_exact(load: int, servers: int) -> Fraction:
    """Erlang C from its defining ratio, in exact rational arithmetic."""
    head = sum(Fraction(load**k, math.factorial(k)) for k in range(servers))
    tail = Fraction(load**servers, math.factorial(servers))
    tail *= Fraction(servers, servers - load)
    return tail / (head + tail)


def test_erlang_b_table_value() -> None:
    # Erlang B table, A = 10 Erl on 10 trunks: 21.46 %.  By hand:
    # sum_{k<=10} 10^k/k! = 12842.305, 10^10/10! = 2755.732, ratio 0.214582.
    assert erlang_b(10.0, 10) == pytest.approx(0.214582343, rel=1e-8)


@pytest.mark.parametrize(("load", "servers"), [(1, 1), (3, 5), (10, 10), (7, 20)])
def test_erlang_b_matches_exact_sum(load: int, servers: int) -> None:
    expected = float(_erlang_b_exact(load, servers))
    assert erlang_b(float(load), servers) == pytest.approx(expected, rel=1e-12)


def test_erlang_c_hand_value() -> None:
    # A = 2, c = 3: sum_{k<3} 2^k/k! = 1 + 2 + 2 = 5,
    # (2^3/3!) * 3/(3-2) = 4, so C = 4 / (5 + 4) = 4/9.
    assert erlang_c(2.0, 3) == pytest.approx(4 / 9, rel=1e-12)


@pytest.mark.parametrize(("load", "servers"), [(1, 2), (4, 5), (9, 10), (15, 30)])
def test_erlang_c_matches_exact_sum(load: int, servers: int) -> None:
    expected = float(_erlang_c_exact(load, servers))
    assert erlang_c(float(load), servers) == pytest.approx(expected, rel=1e-12)


def test_erlang_large_system_is_stable() -> None:
    # c = 200, A = 180: A^c and c! overflow floats; recompute in log space.
    load, servers = 180.0, 200
    log_terms = np.array(
        [k * math.log(load) - math.lgamma(k + 1) for k in range(servers + 1)]
    )
    expected_b = math.exp(log_terms[-1] - special.logsumexp(log_terms))
    log_tail = log_terms[-1] + math.log(servers / (servers - load))
    log_all = np.append(log_terms[:-1], log_tail)
    expected_c = math.exp(log_tail - special.logsumexp(log_all))
    assert erlang_b(load, servers) == pytest.approx(expected_b, rel=1e-10)
    assert erlang_c(load, servers) == pytest.approx(expected_c, rel=1e-10)
    assert 0.0 < erlang_b(load, servers) < erlang_c(load, servers) < 1.0


def test_erlang_c_rejects_overload() -> None:
    with pytest.raises(ValueError, match="unstable"):
        erlang_c(3.0, 3)


# ---------------------------------------------------------------------------
# M/M/1, M/M/c, M/G/1
# ---------------------------------------------------------------------------


def test_mm1_textbook_values() -> None:
    # lambda = 0.8, mu = 1: rho = 0.8, W = 1/(mu-lambda) = 5,
    # W_q = rho W = 4, L = lambda W = 4, L_q = lambda W_q = 3.2.
    metrics = mm1(0.8, 1.0)
    assert metrics.utilisation == pytest.approx(0.8)
    assert metrics.prob_wait == pytest.approx(0.8)
    assert metrics.mean_wait == pytest.approx(4.0)
    assert metrics.mean_sojourn == pytest.approx(5.0)
    assert metrics.mean_in_system == pytest.approx(4.0)
    assert metrics.mean_in_queue == pytest.approx(3.2)


@pytest.mark.parametrize("arrival_rate", [0.1, 0.5, 0.95, 1.9])
def test_mmc_single_server_is_mm1_closed_form(arrival_rate: float) -> None:
    service_rate = 2.0
    rho = arrival_rate / service_rate
    metrics = mmc(arrival_rate, service_rate, 1)
    assert metrics.prob_wait == pytest.approx(rho, rel=1e-12)
    expected_wait = rho / (service_rate - arrival_rate)
    assert metrics.mean_wait == pytest.approx(expected_wait, rel=1e-12)
    assert metrics.mean_in_system == pytest.approx(rho / (1 - rho), rel=1e-12)
    assert mm1(arrival_rate, service_rate) == metrics


def test_mm2_hand_values() -> None:
    # M/M/2, lambda = mu = 1: rho = 1/2, L = 2 rho / (1 - rho^2) = 4/3,
    # W = L / lambda = 4/3, W_q = W - 1 = 1/3, C = W_q (c mu - lambda) = 1/3.
    metrics = mmc(1.0, 1.0, 2)
    assert metrics.prob_wait == pytest.approx(1 / 3)
    assert metrics.mean_wait == pytest.approx(1 / 3)
    assert metrics.mean_in_system == pytest.approx(4 / 3)


@pytest.mark.parametrize(
    ("arrival_rate", "service_rate", "servers"),
    [(1.0, 1.0, 1), (2.0, 1.0, 1), (3.0, 1.0, 3), (0.0, 1.0, 1), (1.0, 1.0, 0)],
)
def test_mmc_rejects_bad_input(
    arrival_rate: float, service_rate: float, servers: int
) -> None:
    with pytest.raises(ValueError, match="must|unstable"):
        mmc(arrival_rate, service_rate, servers)


def test_md1_hand_value() -> None:
    # M/D/1, rho = 0.8, D = 1: W_q = rho D / (2 (1 - rho)) = 0.8 / 0.4 = 2.
    assert md1_mean_wait(0.8, 1.0) == pytest.approx(2.0)
    # Half the M/M/1 wait at the same load (4, from the test above).
    assert md1_mean_wait(0.8, 1.0) == pytest.approx(mm1(0.8, 1.0).mean_wait / 2)


@pytest.mark.parametrize("rho", [0.2, 0.5, 0.9])
def test_mg1_with_cv_one_is_mm1(rho: float) -> None:
    mean_service = 0.25
    arrival_rate = rho / mean_service
    expected = mm1(arrival_rate, 1 / mean_service).mean_wait
    assert mg1_mean_wait(arrival_rate, mean_service, 1.0) == pytest.approx(expected)


def test_mg1_hand_value_and_instability() -> None:
    # lambda = 0.5, E[S] = 1, cv = 2: E[S^2] = 1 + 4 = 5,
    # W_q = 0.5 * 5 / (2 * 0.5) = 2.5.
    assert mg1_mean_wait(0.5, 1.0, 2.0) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="unstable"):
        mg1_mean_wait(1.0, 1.0, 0.5)


def test_mm1_relaxation_time_hand_value() -> None:
    # rho = 0.25, mu = 1: 1 / (1 - 0.5)^2 = 4.
    assert mm1_relaxation_time(0.25, 1.0) == pytest.approx(4.0)


# ---------------------------------------------------------------------------
# Waiting and sojourn distributions
# ---------------------------------------------------------------------------

QUEUES = [(0.8, 1.0, 1), (2.4, 1.0, 3), (1.0, 1.0, 2), (15.0, 2.0, 10)]


@pytest.mark.parametrize(("lam", "mu", "c"), QUEUES)
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 0.999])
def test_wait_quantile_inverts_tail(lam: float, mu: float, c: int, q: float) -> None:
    metrics = mmc(lam, mu, c)
    t = metrics.wait_quantile(q)
    if q <= 1 - metrics.prob_wait:
        assert t == 0.0
    else:
        assert metrics.wait_tail(t) == pytest.approx(1 - q, rel=1e-10)
        # P(W > t) = C exp(-(c mu - lambda) t) written out directly.
        direct = metrics.prob_wait * math.exp(-(c * mu - lam) * t)
        assert direct == pytest.approx(1 - q, rel=1e-10)


@pytest.mark.parametrize(("lam", "mu", "c"), QUEUES)
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99, 0.999])
def test_sojourn_quantile_inverts_tail(lam: float, mu: float, c: int, q: float) -> None:
    metrics = mmc(lam, mu, c)
    assert metrics.sojourn_tail(metrics.sojourn_quantile(q)) == pytest.approx(
        1 - q, rel=1e-9
    )


def test_mm1_sojourn_quantile_hand_value() -> None:
    # T ~ Exp(mu - lambda) = Exp(0.2): median = 5 ln 2, p99 = 5 ln 100.
    metrics = mm1(0.8, 1.0)
    assert metrics.sojourn_quantile(0.5) == pytest.approx(5 * math.log(2))
    assert metrics.sojourn_quantile(0.99) == pytest.approx(5 * math.log(100))
    assert metrics.wait_quantile(0.1) == 0.0  # P(W = 0) = 1 - rho = 0.2


@pytest.mark.parametrize("t", [0.0, 0.3, 2.0, 10.0, 40.0])
def test_mm1_sojourn_tail_is_exponential(t: float) -> None:
    # The W + S mixture formula must collapse to exp(-(mu - lambda) t).
    assert mm1(0.7, 1.0).sojourn_tail(t) == pytest.approx(math.exp(-0.3 * t))


@pytest.mark.parametrize(("lam", "mu", "c"), QUEUES)
def test_tails_integrate_to_means(lam: float, mu: float, c: int) -> None:
    # E[X] = integral_0^inf P(X > t) dt for non-negative X.
    metrics = mmc(lam, mu, c)
    wait, _ = integrate.quad(metrics.wait_tail, 0, np.inf)
    sojourn, _ = integrate.quad(metrics.sojourn_tail, 0, np.inf)
    assert wait == pytest.approx(metrics.mean_wait, rel=1e-7)
    assert sojourn == pytest.approx(metrics.mean_sojourn, rel=1e-7)


def test_sojourn_tail_against_monte_carlo() -> None:
    # Sample T = W + S directly: W = 0 w.p. 1 - C, else Exp(c mu - lambda).
    metrics = mmc(2.4, 1.0, 3)
    rng = np.random.default_rng(20240611)
    n = 200_000
    waits = rng.exponential(1 / (3.0 - 2.4), n) * (rng.random(n) < metrics.prob_wait)
    sojourns = waits + rng.exponential(1.0, n)
    for q in (0.5, 0.9, 0.99):
        p = metrics.sojourn_tail(metrics.sojourn_quantile(q))
        observed = float(np.mean(sojourns > metrics.sojourn_quantile(q)))
        # 4.5 binomial standard deviations.
        assert abs(observed - p) <= 4.5 * math.sqrt(p * (1 - p) / n)


def test_quantile_rejects_bad_level() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mm1(0.5, 1.0).sojourn_quantile(1.0)


# ---------------------------------------------------------------------------
# M/M/c/K
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.1, 0.8, 1.0, 3.0])
def test_mmck_single_place_blocking(rho: float) -> None:
    # M/M/1/1: p_0 : p_1 = 1 : rho, so P_block = rho / (1 + rho).
    metrics = mmck(rho, 1.0, 1, 1)
    assert metrics.prob_block == pytest.approx(rho / (1 + rho))
    assert metrics.mean_in_queue == 0.0
    assert metrics.mean_sojourn == pytest.approx(1.0)


@pytest.mark.parametrize(("load", "servers"), [(2.0, 1), (10.0, 10), (180.0, 200)])
def test_mmck_loss_system_is_erlang_b(load: float, servers: int) -> None:
    metrics = mmck(load, 1.0, servers, servers)
    assert metrics.prob_block == pytest.approx(erlang_b(load, servers), rel=1e-10)


def test_mmck_hand_values() -> None:
    # M/M/1/2, rho = 1/2: p = (1, 1/2, 1/4) / (7/4) = (4/7, 2/7, 1/7).
    # L = 2/7 + 2/7 = 4/7, L_q = 1/7, throughput = 1/2 * 6/7 = 3/7,
    # W = L / throughput = 4/3, W_q = 1/3.
    metrics = mmck(0.5, 1.0, 1, 2)
    assert metrics.state_probs == pytest.approx((4 / 7, 2 / 7, 1 / 7))
    assert metrics.throughput == pytest.approx(3 / 7)
    assert metrics.mean_in_system == pytest.approx(4 / 7)
    assert metrics.mean_in_queue == pytest.approx(1 / 7)
    assert metrics.mean_sojourn == pytest.approx(4 / 3)
    assert metrics.mean_wait == pytest.approx(1 / 3)


def test_mmck_overloaded_hand_value() -> None:
    # M/M/1/3, rho = 2: weights 1, 2, 4, 8 over 15, so P_block = 8/15.
    metrics = mmck(2.0, 1.0, 1, 3)
    assert metrics.prob_block == pytest.approx(8 / 15)
    assert metrics.utilisation == pytest.approx(1 - 1 / 15)


@pytest.mark.parametrize(("lam", "mu", "c"), [(0.8, 1.0, 1), (2.4, 1.0, 3)])
def test_mmck_large_capacity_tends_to_mmc(lam: float, mu: float, c: int) -> None:
    finite = mmck(lam, mu, c, 5000)
    infinite = mmc(lam, mu, c)
    assert finite.prob_block < 1e-12
    assert finite.mean_wait == pytest.approx(infinite.mean_wait, rel=1e-9)
    assert finite.mean_sojourn == pytest.approx(infinite.mean_sojourn, rel=1e-9)
    assert finite.mean_in_queue == pytest.approx(infinite.mean_in_queue, rel=1e-9)
    assert finite.utilisation == pytest.approx(infinite.utilisation, rel=1e-9)
    assert sum(finite.state_probs[c:]) == pytest.approx(infinite.prob_wait)


def test_mmck_rejects_capacity_below_servers() -> None:
    with pytest.raises(ValueError, match="capacity"):
        mmck(1.0, 1.0, 3, 2)


# ---------------------------------------------------------------------------
# Tandem network
# ---------------------------------------------------------------------------


def test_tandem_hand_value() -> None:
    # lambda = 1, mu = (2, 4), one 0.5 link: 1/(2-1) + 1/(4-1) + 0.5 = 11/6.
    assert tandem_mm1(1.0, [2.0, 4.0], [0.5]) == pytest.approx(11 / 6)
    assert tandem_mm1(0.8, [1.0]) == pytest.approx(5.0)


def test_tandem_rejects_unstable_stage() -> None:
    with pytest.raises(ValueError, match="unstable"):
        tandem_mm1(1.0, [2.0, 1.0], [0.1])
    with pytest.raises(ValueError, match="link_delays"):
        tandem_mm1(1.0, [2.0], [-0.1])


# ---------------------------------------------------------------------------
# Confidence helpers
# ---------------------------------------------------------------------------


def test_replication_ci_hand_value() -> None:
    # values 1..5: mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.776445.
    mean, half = replication_ci([1, 2, 3, 4, 5], confidence=0.95)
    assert mean == pytest.approx(3.0)
    assert half == pytest.approx(2.776445 * math.sqrt(2.5 / 5), rel=1e-6)


@pytest.mark.parametrize("confidence", [0.90, 0.99])
def test_replication_ci_coverage(confidence: float) -> None:
    rng = np.random.default_rng(12345)
    data = rng.normal(3.0, 2.0, size=(REPETITIONS, 10))
    results = np.array([replication_ci(row, confidence) for row in data])
    low, high = _coverage_range(confidence)
    assert low <= _covered(results[:, 0], results[:, 1], 3.0) <= high
    # The check has power: half or double width would be rejected.
    assert _covered(results[:, 0], 0.5 * results[:, 1], 3.0) < low
    if confidence == 0.90:
        assert _covered(results[:, 0], 2.0 * results[:, 1], 3.0) > high


def test_batch_means_coverage_iid() -> None:
    rng = np.random.default_rng(777)
    data = rng.normal(-1.0, 5.0, size=(REPETITIONS, 2000))
    results = np.array([batch_means(row) for row in data])
    low, high = _coverage_range(0.99)
    assert low <= _covered(results[:, 0], results[:, 1], -1.0) <= high


def _ar1_runs(phi: float, length: int, seed: int) -> np.ndarray:
    """Stationary AR(1) runs x_t = phi x_{t-1} + e_t with unit-variance noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(REPETITIONS, length))
    start = rng.normal(size=(REPETITIONS, 1)) / math.sqrt(1 - phi**2)
    runs, _ = signal.lfilter([1.0], [1.0, -phi], noise, axis=1, zi=phi * start)
    return runs


def test_batch_means_coverage_needs_long_batches() -> None:
    # AR(1), phi = 0.9: integrated autocorrelation time (1+phi)/(1-phi) = 19.
    low, high = _coverage_range(0.99)
    long_runs = _ar1_runs(0.9, 20 * 2000, seed=99)  # batches ~ 100 x 19
    long = np.array([batch_means(run) for run in long_runs])
    assert low <= _covered(long[:, 0], long[:, 1], 0.0) <= high
    # Batches of 5 samples are far shorter than the correlation time, so
    # the interval is much too narrow and coverage collapses.
    short = np.array([batch_means(run[:100]) for run in long_runs])
    assert _covered(short[:, 0], short[:, 1], 0.0) < low


def test_batch_means_drops_oldest_remainder() -> None:
    # 41 samples, 2 batches of 20: the first sample (1000) is discarded.
    samples = [1000.0] + [0.0] * 20 + [2.0] * 20
    mean, _ = batch_means(samples, n_batches=2)
    assert mean == pytest.approx(1.0)


def test_proportion_ci_hand_value_and_coverage() -> None:
    # 30/100 at 95 %: 0.3 +- 1.959964 * sqrt(0.21 / 100).
    p_hat, half = proportion_ci(30, 100, confidence=0.95)
    assert p_hat == pytest.approx(0.3)
    assert half == pytest.approx(1.959964 * math.sqrt(0.0021), rel=1e-6)
    rng = np.random.default_rng(4242)
    counts = rng.binomial(500, 0.3, size=REPETITIONS)
    results = np.array([proportion_ci(int(k), 500) for k in counts])
    low, high = _coverage_range(0.99)
    assert low <= _covered(results[:, 0], results[:, 1], 0.3) <= high


@pytest.mark.parametrize(
    ("successes", "n", "confidence"), [(5, 4, 0.9), (1, 0, 0.9), (1, 2, 1.0)]
)
def test_proportion_ci_rejects_bad_input(
    successes: int, n: int, confidence: float
) -> None:
    with pytest.raises(ValueError, match="need|confidence"):
        proportion_ci(successes, n, confidence)
