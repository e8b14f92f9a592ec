"""Payoffs in worker processes (games.parallel): a run on several workers equals the serial run
(the same strategies every round, the same equilibrium and certificate, numbers to the last
bits an LP's warm start decides), for each kind of call that uses the workers
(a best response's strategies, a round of regret matching, the deviations from a mixed
profile); the pool reports its workers' errors and stops its processes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexgame.agents.model import FlexMarketModel
from flexgame.games.parallel import WorkerPool, chunks, resolve_jobs
from flexgame.games.payoff import GameEvaluator
from flexgame.games.reasoning import ReasoningConfig
from flexgame.games.strategies import BidMap, StrategyConfig
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.schemes import build_scheme
from flexgame.markets.system import SystemConfig, build_system
from tiny_market import bid_table, feeder_bid, tiny_system, tx_bid


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_parallel")


def edgeworth(folder, scheme: str = "common"):
    """Capacity-constrained price competition with a feeder FSP: best responses cycle."""
    rows = [tx_bid("A", 2, 6, 10), tx_bid("B", 3, 6, 10), feeder_bid("C", 3, 2, 12)]
    return build_scheme(tiny_system(folder, 11.0), bid_table(rows), scheme)


def run(built, reasoning: ReasoningConfig, settlement: str = "pay_as_bid") -> FlexMarketModel:
    model = FlexMarketModel(built, reasoning=reasoning, settlement=settlement, seed=0)
    model.run()
    return model


def assert_same_run(serial: FlexMarketModel, parallel: FlexMarketModel) -> None:
    """Same strategies every round, same equilibrium (concept, support, probabilities);
    numbers equal to the last bits an LP's warm start decides (a worker reaches a clearing
    from its own solve history: the same optimal solution, the same to ~1e-15 relative)."""
    a_rounds, b_rounds = serial.rounds_table(), parallel.rounds_table()
    assert serial.history == parallel.history
    pd.testing.assert_frame_equal(a_rounds, b_rounds, check_exact=False, rtol=1e-12,
                                  atol=1e-9)
    a, b = serial.equilibrium, parallel.equilibrium
    if a is None:
        assert b is None
        return
    assert (a.concept, a.profiles) == (b.concept, b.profiles)
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-12, atol=1e-12)
    assert b.epsilon == pytest.approx(a.epsilon, rel=1e-12, abs=1e-9)
    assert b.outcome.cost_eur == pytest.approx(a.outcome.cost_eur, rel=1e-12)


@pytest.mark.parametrize("settlement", ["pay_as_bid", "uniform"])
def test_equilibrium_on_two_workers_is_the_serial_one(folder, settlement):
    """Best responses split over workers (Gauss-Seidel), then the equilibrium search
    (double oracle's deviations, or regret matching's rounds) on workers."""
    space = StrategyConfig(kind="multiplicative", markup_max=3.0, markup_points=5, price_cap=30)
    serial = run(edgeworth(folder), ReasoningConfig("equilibrium", strategy=space), settlement)
    parallel = run(edgeworth(folder), ReasoningConfig("equilibrium", strategy=space, n_jobs=2),
                   settlement)
    assert serial.status == "cycle" or settlement != "pay_as_bid"
    assert_same_run(serial, parallel)
    assert parallel.evaluator.deviation_payoffs.pool is None  # closed at the end of the run


def test_coarse_correlated_fallback_on_two_workers_is_the_serial_one(folder):
    """max_profiles=1 skips the mixed solver: regret matching's rounds go to the workers."""
    space = StrategyConfig(kind="multiplicative", markup_max=3.0, markup_points=5, price_cap=30)
    reasoning = dict(strategy=space, max_profiles=1, cce_rounds=60)
    serial = run(edgeworth(folder), ReasoningConfig("equilibrium", **reasoning))
    parallel = run(edgeworth(folder), ReasoningConfig("equilibrium", n_jobs=2, **reasoning))
    assert serial.equilibrium.concept == parallel.equilibrium.concept
    assert_same_run(serial, parallel)


@pytest.mark.parametrize("scheme", ["ml01", "bid_aggregation"])
def test_default_system_level_k_on_two_workers_is_the_serial_one(scheme):
    """Also bid aggregation, whose residual supply functions each worker solves from the same
    starting bases (in sensitivity form) and caches by its own history."""
    system = build_system(SystemConfig())
    bids = generate_bids(system, BidConfig(case="B", aggregation="by_feeder"),
                         np.random.default_rng(0))
    reasoning = dict(level=2, strategy=StrategyConfig(markup_points=6))
    serial = run(build_scheme(system, bids, scheme), ReasoningConfig("level_k", **reasoning))
    parallel = run(build_scheme(system, bids, scheme),
                   ReasoningConfig("level_k", n_jobs=2, **reasoning))
    assert_same_run(serial, parallel)
    assert parallel.evaluator.clearings > 0


def test_worker_errors_reach_the_caller(folder):
    built = edgeworth(folder)
    ev = GameEvaluator(built, BidMap(built.bids, StrategyConfig().space()))
    pool = WorkerPool(ev, 2)
    try:
        with pytest.raises(RuntimeError, match="payoff worker 1 failed"):
            pool.payoffs([(ev.bid_map.truthful(), "A", None),
                          (ev.bid_map.truthful(), "no such player", None)], [0, 1])
    finally:
        pool.close()
    assert "closed" in repr(pool)
    with pytest.raises(RuntimeError, match="closed"):
        pool.payoffs([(ev.bid_map.truthful(), "A", None)], [0])


def test_chunks_and_jobs():
    assert [list(c) for c in chunks(list(range(5)), 2)] == [[0, 1], [2, 3, 4]]
    assert [list(c) for c in chunks([1], 4)] == [[1]]
    assert resolve_jobs(3) == 3 and resolve_jobs(0) >= 1
