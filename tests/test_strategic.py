"""The strategic layer (ALEXANDER D4.1, KER 2) checked against brute force on tiny games.

Every game is played on the tiny market of :mod:`tiny_market` (a 3-bus transmission triangle
that never binds, plus a 3-bus radial feeder at transmission bus 3). The reasoning processes
are run by :class:`FlexMarketModel`, the path a strategic run takes; a game's full payoff
table is enumerated with the model's own :class:`GameEvaluator`, so brute force and dynamics
play the same game. Pure Nash equilibria are found by checking every unilateral deviation,
and the exact best responses, IBR fixed points and rounds, k-level plays and regret
certificates must agree with them.

Ties between equally priced bids are split by the LP (one bid filled first); the payoff
tables record whichever split the clearing returns, and the properties asserted below hold
for any such split (see the docstrings).
"""

from __future__ import annotations


import numpy as np
import pytest

from flexgame.agents.agents import MarketOperatorAgent, SystemOperatorAgent
from flexgame.agents.model import FlexMarketModel
from flexgame.games.reasoning import REASONINGS, ReasoningConfig
from flexgame.games.best_response import best_response, certificate, sampled_payoffs
from flexgame.games.dynamics import logit_response
from flexgame.games.metrics import certified_outcome, pivotal_suppliers, strategic_metrics
from flexgame.games.mpec import mpec_best_response
from flexgame.games.normal_form import expected_payoffs
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import BidMap, StrategyConfig, StrategySpace
from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_assessment import assess
from flexgame.markets.schemes import SCHEMES, build_scheme
from flexgame.markets.settlement import settle
from tiny_market import (
    TOL, bid_table, brute_best_response, brute_round, feeder_bid, payoff_table, pure_equilibria,
    regrets, tiny_system, tx_bid,
)

MODES = ("gauss_seidel", "jacobi")
GRID4 = [1.0, 1.2, 1.5, 2.0]

# name -> (TSO need [MW], truthful bids, strategy space, congested feeder)
GAMES = {
    # two identical FSPs, each able to serve the whole need: Bertrand on a grid
    "bertrand": (5.0, [tx_bid("A", 2, 10, 10), tx_bid("B", 3, 10, 10)],
                 dict(markups=GRID4, price_cap=500.0), False),
    # three capacity-constrained transmission FSPs, all three needed
    "three_tx": (10.0, [tx_bid("A", 2, 4, 10), tx_bid("B", 3, 4, 12), tx_bid("C", 2, 4, 15)],
                 dict(markups=GRID4, price_cap=30.0), False),
    # two transmission FSPs and a distribution FSP on the feeder
    "three_mixed": (9.0, [tx_bid("A", 2, 5, 10), tx_bid("B", 3, 4, 12),
                          feeder_bid("C", 3, 3, 15)],
                    dict(markups=[1.0, 1.25, 1.5, 2.0], price_cap=25.0), False),
    # pooled FSPs: each of A and B holds a transmission and a distribution resource
    "pooled": (10.0, [tx_bid("A", 2, 5, 10), feeder_bid("A", 3, 2, 15), tx_bid("B", 3, 4, 12),
                      feeder_bid("B", 2, 3, 14), tx_bid("C", 2, 6, 20)],
               dict(markups=GRID4, price_cap=40.0), False),
    # capacity-constrained price competition (need 10, 2 x 6 MW, cost 10, cap 30):
    # Edgeworth cycles, no pure equilibrium on the grid
    "edgeworth": (10.0, [tx_bid("A", 2, 6, 10), tx_bid("B", 3, 6, 10)],
                  dict(markups=[1.0, 1.5, 2.0, 2.5, 3.0], price_cap=30.0), False),
    # an FSP (L) alone below the congested feeder branch 2-3; cheap transmission FSPs cover
    # the TSO need; Dd (down at feeder bus 2) lets a held-interface DSO layer net L out
    "local": (5.0, [tx_bid("T", 2, 20, 5), feeder_bid("L", 3, 1, 20),
                    feeder_bid("Dd", 2, 2, 5, "down"), tx_bid("T2", 3, 20, 8)],
              dict(markups=GRID4, price_cap=40.0), True),
}
EQUILIBRIUM_GAMES = ("bertrand", "three_tx", "three_mixed", "pooled")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_strategic")


def make_scheme(folder, game: str, scheme: str = "common", **space_overrides):
    need, rows, space, congested = GAMES[game]
    system = tiny_system(folder, need, congested=congested)
    space = StrategySpace(**{**space, **space_overrides})
    return build_scheme(system, bid_table(rows), scheme), space


def make_evaluator(folder, game: str, scheme: str = "common", settlement: str = "pay_as_bid",
                   **space_overrides) -> GameEvaluator:
    """A fresh scheme and evaluator (fresh cache, fresh solver state) for ``game``."""
    built, space = make_scheme(folder, game, scheme, **space_overrides)
    return GameEvaluator(built, BidMap(built.bids, space), settlement)


def brute(evaluator):
    """(the whole game's payoff table, its pure equilibria) of the evaluator's game."""
    game = payoff_table(evaluator)
    return game, pure_equilibria(game)


def run_model(built, space, reasoning: ReasoningConfig, settlement: str = "pay_as_bid",
              seed: int = 0) -> FlexMarketModel:
    """The model a strategic run uses, run to its end on a built scheme."""
    model = FlexMarketModel(built, space, reasoning, settlement, seed=seed)
    model.run()
    return model


def ibr(mode: str, start: str = "truthful", space: StrategySpace | None = None,
        max_rounds: int = 50) -> ReasoningConfig:
    """IBR from truthful bids, or (``start="top"``) from everyone at the top markup."""
    if start == "top":
        return ReasoningConfig("ibr", update=mode, max_rounds=max_rounds, level0="fixed",
                               level0_markup_index=len(space.markups) - 1)
    return ReasoningConfig("ibr", update=mode, max_rounds=max_rounds)


def assert_ibr_is_brute_force(model, game, mode):
    """The model's IBR against the payoff table: every round is the brute-force round of best
    responses in the model's update order, and a fixed point is a brute-force equilibrium
    with a zero certificate."""
    assert_rounds_are_brute_force(model.history, game, model.order, mode)
    if model.status == "converged":
        assert model.history[-1] == model.history[-2] == model.profile
        assert model.profile in pure_equilibria(game)
        assert certificate(model.evaluator, model.profile).epsilon == 0.0


def assert_rounds_are_brute_force(history, game, order, mode):
    """Every round of a history is the round of best responses (read off the payoff table)
    of the previous profile: simultaneous for Jacobi, sequential in ``order`` for
    Gauss-Seidel."""
    for before, after in zip(history, history[1:]):
        assert after == brute_round(game, before, order, mode)


# --- the fixture itself ------------------------------------------------------------------------

def test_tiny_market_is_as_described(folder):
    """Need as configured; uncongested feeder ratings far above base flows; the congested
    variant allows exactly 1.5 MW on 2-3 (base 2 MW); truthful clearing of the Edgeworth game
    fills 10 MW from the two 6 MW bids at 10 EUR/MW."""
    plain = tiny_system(folder, 10.0)
    assert plain.tso_need_mw == pytest.approx(10.0)
    (feeder,) = plain.feeders
    assert feeder.branch_names() == ["1-2", "2-3"]
    assert np.all(feeder.rating_mva >= 99.0 * np.array([3.0, 2.0]) - 1e-6)
    tight = tiny_system(folder, 5.0, congested=True)
    assert tight.feeders[0].rating_mva[1] == pytest.approx(1.5)
    ev = make_evaluator(folder, "edgeworth")
    out = ev.outcome(ev.bid_map.truthful())
    assert sorted(out.activation_mw) == pytest.approx([4.0, 6.0])
    assert out.cost_eur == pytest.approx(100.0) and out.unmet_need_mw == pytest.approx(0.0)


# --- brute force vs. games/ ------------------------------------------------------------------

@pytest.mark.parametrize("game", EQUILIBRIUM_GAMES + ("edgeworth",))
def test_certificate_is_the_brute_force_max_regret(folder, game):
    """At every profile, each FSP's certified regret equals its best unilateral gain in the
    payoff table; epsilon is 0 exactly at the brute-force equilibria and > 0 elsewhere."""
    ev = make_evaluator(folder, game)
    game, equilibria = brute(ev)
    non_equilibria = 0
    for profile in game.profiles():
        cert = certificate(ev, profile)
        expected = regrets(game, profile)
        assert cert.regret == pytest.approx(expected, abs=1e-9)
        assert cert.epsilon == pytest.approx(max(expected.values()), abs=1e-9)
        if profile in equilibria:
            assert cert.epsilon <= TOL
        else:
            non_equilibria += 1
            assert cert.epsilon > TOL
    assert non_equilibria > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("game", EQUILIBRIUM_GAMES)
def test_ibr_converges_to_a_brute_force_equilibrium(folder, game, mode):
    """These games have pure equilibria; the model's IBR from truthful bids and from the top
    markup, under several seeds (Gauss-Seidel orders), converges to one of them with a zero
    certificate, and every round is the brute-force round of best responses of the previous
    profile."""
    built, space = make_scheme(folder, game)
    top = space.uniform(len(space.markups) - 1)
    for start in ("truthful", "top"):
        for seed in range(3):
            model = run_model(built, space, ibr(mode, start, space), seed=seed)
            game, equilibria = brute(model.evaluator)
            assert equilibria
            assert model.status == "converged", (start, seed, model.history)
            assert set(model.history[0].values()) == {space.truthful if start == "truthful"
                                                      else top}
            assert_ibr_is_brute_force(model, game, mode)


@pytest.mark.parametrize("game", EQUILIBRIUM_GAMES + ("edgeworth", "local"))
def test_level_k_is_the_brute_force_best_response(folder, game):
    """The model's level-2 run: round 1 = every FSP's best response (ties: keep current, then
    lowest markup) to all others truthful, read off the payoff table; round 2 likewise to
    round 1."""
    built, space = make_scheme(folder, game)
    model = run_model(built, space, ReasoningConfig("level_k", level=2))
    assert model.status == "level_k" and model.round == 2
    game, _ = brute(model.evaluator)
    assert model.history[0] == model.bid_map.truthful()
    for level, nxt in zip(model.history, model.history[1:]):
        expected = {f: brute_best_response(game, level, f) for f in game.players}
        assert nxt == expected
        for f in game.players:
            dev = game.deviation_payoffs(level, f)
            assert dev[nxt[f]] == pytest.approx(max(dev.values()), abs=TOL)


def test_best_response_ties_keep_the_current_strategy(folder):
    """Bertrand with the rival truthful: every strategy earns 0, so the best response keeps
    whatever the FSP plays now (the tie rule of games.best_response) and reports zero
    regret."""
    ev = make_evaluator(folder, "bertrand")
    for current in ev.bid_map.space.strategies:
        br = best_response(ev, {"A": current, "B": (0, 0)}, "A")
        assert set(br.payoffs.values()) == {0.0}
        assert br.strategy == current and br.regret == 0.0


# --- textbook cases --------------------------------------------------------------------------

def test_bertrand_identical_fsps(folder):
    """Two identical FSPs (cost 10, 10 MW each, need 5 MW), pay-as-bid. On the grid
    [1, 1.2, 1.5, 2]: truthful bidding is an equilibrium (undercutting a truthful rival is
    impossible, raising loses all volume); in every pure equilibrium the accepted price is at
    most the first step 1.2 x cost (else the FSP left out would undercut by one step and earn
    > 0). IBR from truthful stays there (round 1); from the top it undercuts down to one of
    the brute-force equilibria."""
    built, space = make_scheme(folder, "bertrand")
    for mode in MODES:
        model = run_model(built, space, ibr(mode))
        _, equilibria = brute(model.evaluator)
        assert {"A": (0, 0), "B": (0, 0)} in equilibria
        for profile in equilibria:
            out = model.evaluator.outcome(profile)
            assert out.unmet_need_mw == pytest.approx(0.0)
            assert out.cost_eur <= 5.0 * 12.0 + 1e-9
            assert sum(out.profit.values()) <= 5.0 * 2.0 + 1e-9
            assert min(model.bid_map.markup_of(s) for s in profile.values()) <= 1.2
        assert model.status == "converged" and model.round == 1
        assert model.profile == model.bid_map.truthful()
        model = run_model(built, space, ibr(mode, "top", space))
        assert model.status == "converged"
        assert_ibr_is_brute_force(model, brute(model.evaluator)[0], mode)
        assert model.current_outcome.cost_eur <= 60.0 + 1e-9


@pytest.mark.parametrize("cap", [40.0, 35.0])
def test_pivotal_fsp_bids_the_price_cap(folder, cap):
    """Need 8 MW, Q offers 4 MW at 10, P 10 MW at 20: P is pivotal (4 MW of residual demand
    whatever Q does). The top markup 2.0 maps to the cap (40 = 2 x 20, or the cap 35 below it);
    it is P's best response to every strategy of Q, and P is still accepted for 4 MW at the cap
    (the TSO's unmet-need penalty, 1e4 EUR/MW, exceeds the cap)."""
    need, rows = 8.0, [tx_bid("Q", 2, 4, 10), tx_bid("P", 3, 10, 20)]
    system = tiny_system(folder, need)
    built = build_scheme(system, bid_table(rows), "common")
    space = StrategySpace(markups=GRID4, price_cap=cap)
    ev = GameEvaluator(built, BidMap(built.bids, space), "pay_as_bid")
    top = (len(GRID4) - 1, 0)
    assert space.price(np.array([20.0]), top[0])[0] == pytest.approx(cap)
    for q in space.strategies:
        br = best_response(ev, {"Q": q, "P": (0, 0)}, "P")
        assert br.strategy == top
        assert br.payoff == pytest.approx(4.0 * (cap - 20.0))
        values = [br.payoffs[s] for s in space.strategies]
        assert all(np.diff(values) > 0)
        out = ev.outcome({"Q": q, "P": top})
        p_row = int(np.flatnonzero(built.bids.fsp == "P")[0])
        assert out.activation_mw[p_row] == pytest.approx(4.0)
        assert out.unmet_need_mw == pytest.approx(0.0)
    model = run_model(built, space, ReasoningConfig("level_k", level=1))
    assert model.profile["P"] == top


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "dso_blocking"])
def test_local_market_power_behind_a_congested_line(folder, scheme):
    """L is the only FSP below the congested feeder branch 2-3 (the DSO needs 0.5 MW up at
    feeder bus 3); transmission FSPs at 5 and 8 EUR/MW cover the TSO need. In every scheme
    with a market that buys for the DSO, the DSO must buy 0.5 MW from L whatever it asks (the
    line penalty): L's profit rises with its markup and its best response to truthful others
    is the top markup (price 40)."""
    ev = make_evaluator(folder, "local", scheme=scheme)
    truthful = ev.bid_map.truthful()
    l_row = int(np.flatnonzero(ev.scheme.bids.fsp == "L")[0])
    br = best_response(ev, truthful, "L")
    top = (len(GRID4) - 1, 0)
    assert br.strategy == top and ev.bid_map.markup_of(br.strategy) > 1.0
    assert br.payoff == pytest.approx(0.5 * (40.0 - 20.0))
    values = [br.payoffs[s] for s in ev.bid_map.space.strategies]
    assert all(np.diff(values) > 0)
    out = ev.outcome({**truthful, "L": top})
    assert out.activation_mw[l_row] == pytest.approx(0.5)
    assert out.unmet_need_mw == pytest.approx(0.0, abs=1e-9)


def test_dso_blocking_buys_nothing_for_the_dso(folder):
    """Under dso_blocking no market buys for the DSO (blocking only removes activations), so
    L, whose only value is relieving the feeder, is never accepted and earns nothing at any
    markup: the congestion stays."""
    ev = make_evaluator(folder, "local", scheme="dso_blocking")
    br = best_response(ev, ev.bid_map.truthful(), "L")
    assert set(br.payoffs.values()) == {0.0}


def test_no_local_market_power_without_congestion(folder):
    """Control for the test above: the same bids on the uncongested feeder. L (20 EUR/MW) is
    never needed, every strategy earns 0, and its best response stays truthful."""
    need, rows, space, _ = GAMES["local"]
    system = tiny_system(folder, need, congested=False)
    built = build_scheme(system, bid_table(rows), "common")
    ev = GameEvaluator(built, BidMap(built.bids, StrategySpace(**space)), "pay_as_bid")
    br = best_response(ev, ev.bid_map.truthful(), "L")
    assert br.strategy == (0, 0) and set(br.payoffs.values()) == {0.0}


@pytest.mark.parametrize("congested", [False, True])
def test_vcg_common_market_makes_truthful_bidding_dominant(folder, congested):
    """Pooled FSPs (one transmission and one distribution bid each for A and B) in the common
    market under VCG: truthful is a best response to every profile of the others (weak
    dominance, checked over the whole payoff table), so IBR from truthful converges at round 1
    with every markup index 0, with a zero certificate. Control: under pay-as-bid the same
    game's IBR leaves truthful bidding."""
    need, rows, space, _ = GAMES["pooled"]
    system = tiny_system(folder, need, congested=congested)
    built = build_scheme(system, bid_table(rows), "common")
    space = StrategySpace(**space)
    for mode in MODES:
        model = run_model(built, space, ibr(mode), "vcg", seed=1)
        game, equilibria = brute(model.evaluator)
        for profile in game.profiles():
            for f in game.players:
                dev = game.deviation_payoffs(profile, f)
                assert dev[(0, 0)] >= max(dev.values()) - TOL
        assert {f: (0, 0) for f in game.players} in equilibria
        assert model.status == "converged" and model.round == 1
        assert all(s == (0, 0) for s in model.profile.values())
        assert_ibr_is_brute_force(model, game, mode)
    model = run_model(built, space, ibr("gauss_seidel"), "pay_as_bid", seed=1)
    assert any(s != (0, 0) for s in model.profile.values())


# --- non-convergence is a result -------------------------------------------------------------

def test_edgeworth_game_has_no_pure_equilibrium(folder):
    """Need 10 MW, two FSPs of 6 MW at cost 10, cap 30, markups [1, 1.5, 2, 2.5, 3]: the FSP
    priced higher serves the 4 MW residual, so it earns 4 x (30 - 10) = 80 at the cap, while
    undercutting a rival at 30 to 25 earns 6 x 15 = 90: no pure equilibrium (brute force)."""
    ev = make_evaluator(folder, "edgeworth")
    game, equilibria = brute(ev)
    assert game.shape == (5, 5) and equilibria == []
    # the residual-monopoly and undercutting payoffs of the docstring
    assert game.payoff({"A": (4, 0), "B": (0, 0)}, "A") == pytest.approx(80.0)
    assert game.payoff({"A": (3, 0), "B": (4, 0)}, "A") == pytest.approx(90.0)


@pytest.mark.parametrize("mode", MODES)
def test_edgeworth_model_reports_a_cycle(folder, mode):
    """The model's IBR (50 rounds) ends in a cycle: status 'cycle' before the cap, the final
    profile is the cycle's first, each step (history and cycle) is the brute-force round of
    best responses in the model's update order, no profile of the cycle is an equilibrium.
    Gauss-Seidel (A and B in turn) cycles over 2 profiles; Jacobi (simultaneous) over 4, as
    both undercut together and then both return to the cap. The rounds table has one row per
    FSP per collected step (the start and every round)."""
    built, space = make_scheme(folder, "edgeworth")
    model = run_model(built, space, ibr(mode))
    assert model.status == "cycle" and not model.running
    assert len(model.cycle) == (2 if mode == "gauss_seidel" else 4) and model.round < 50
    assert model.profile == model.cycle[0]
    game, equilibria = brute(model.evaluator)
    assert equilibria == []
    assert_rounds_are_brute_force(model.history, game, model.order, mode)
    assert_rounds_are_brute_force(model.cycle + [model.cycle[0]], game, model.order, mode)
    assert all(certificate(model.evaluator, p).epsilon > TOL for p in model.cycle)
    table = model.rounds_table()
    n_fsps, steps = len(model.fsps), model.round + 1
    assert len(table) == n_fsps * steps
    assert sorted(table.step.unique()) == list(range(steps))
    assert all(sorted(g.fsp) == ["A", "B"] for _, g in table.groupby("step"))


# --- the Mesa model ----------------------------------------------------------------------------

@pytest.mark.parametrize("reasoning", [
    ReasoningConfig("ibr", update="gauss_seidel"),
    ReasoningConfig("ibr", update="jacobi"),
    ReasoningConfig("logit", max_rounds=4, rationality=0.2),
    ReasoningConfig("cognitive_hierarchy", level=2, samples=5),
])
def test_model_same_seed_same_rounds_table(folder, reasoning):
    """Two runs with the same seed (each on a freshly built scheme) give identical tables."""
    tables = []
    for _ in range(2):
        built, space = make_scheme(folder, "three_mixed")
        model = FlexMarketModel(built, space, reasoning, seed=7)
        model.run()
        tables.append(model.rounds_table())
    assert len(tables[0]) > 3
    assert tables[0].equals(tables[1])


def test_model_collects_cost_and_profits_every_round(folder):
    """The DataCollector has one model row per collected step (start + every round) whose
    procurement cost and per-FSP profits are those of that step's profile."""
    built, space = make_scheme(folder, "edgeworth")
    model = FlexMarketModel(built, space, ReasoningConfig("ibr", max_rounds=50), seed=0)
    model.run()
    frame = model.datacollector.get_model_vars_dataframe()
    assert len(frame) == model.round + 1 == len(model.history)
    assert frame["round"].tolist() == list(range(model.round + 1))
    expected = [model.evaluator.outcome(p).cost_eur for p in model.history]
    assert frame.procurement_cost_eur.tolist() == pytest.approx(expected)
    assert len(set(expected)) > 1  # the rounds differ: a stale value would be caught
    table = model.rounds_table()
    for _, row in table.iterrows():
        outcome = model.evaluator.outcome(model.history[row.step])
        assert row.profit_eur == pytest.approx(outcome.profit[row.fsp])
        assert row.markup == pytest.approx(
            model.bid_map.markup_of(model.history[row.step][row.fsp]))


def test_market_operator_agents_record_their_layers(folder):
    """In ml01 the market-operator agents (one DSO layer, the TSO layer) record their layer's
    procurement cost and accepted MW every round; the layers' costs add up to the round's
    procurement cost."""
    built, space = make_scheme(folder, "local", scheme="ml01")
    model = FlexMarketModel(built, space, ReasoningConfig("ibr", max_rounds=5), seed=0)
    model.run()
    ops = model.datacollector.get_agenttype_vars_dataframe(MarketOperatorAgent).reset_index()
    assert set(ops.layer) == {"dso:feeder", "tso"}
    totals = model.datacollector.get_model_vars_dataframe().procurement_cost_eur
    assert ops.groupby("Step").cost_eur.sum().to_numpy() == pytest.approx(totals.to_numpy())
    assert (ops[ops.layer == "dso:feeder"].accepted_mw > 0).all()  # L relieves the feeder


def test_system_operators_check_their_networks_every_round(folder):
    """Congested feeder branch 2-3 with no bid below it (the local game without L), and a TSO
    need of 50 MW against 42 MW of bids (U, 2 MW up at feeder bus 2, above the branch): every
    round the DSO agent finds its feeder's line still over its rating and the TSO agent finds
    8 MW of need unmet and no congested transmission line, as the ex-post assessment of the
    final clearing says."""
    rows = [tx_bid("T", 2, 20, 5), feeder_bid("U", 2, 2, 30), tx_bid("T2", 3, 20, 8)]
    built = build_scheme(tiny_system(folder, 50.0, congested=True), bid_table(rows), "ml01")
    model = run_model(built, StrategySpace(markups=GRID4, price_cap=40.0), ibr("gauss_seidel"))
    ops = model.datacollector.get_agenttype_vars_dataframe(SystemOperatorAgent).reset_index()
    assert len(ops) == 2 * (model.round + 1)
    tso, dso = ops[ops.operator == "TSO"], ops[ops.operator == "DSO:feeder"]
    assert tso.unmet_need_mw.to_numpy() == pytest.approx(8.0)
    assert (tso.congestions == 0).all() and (dso.unmet_need_mw == 0).all()
    assert (dso.congestions == 1).all() and (dso.voltage_violations == 0).all()
    report = assess(built.system, built.bids, model.evaluator.result(model.profile).activation_mw)
    assert report.congestions == 1 and report.voltage_violations == 0
    assert report.residual_need_mw == pytest.approx(8.0)


def test_evaluator_keeps_the_last_clearing_results(folder):
    """The full clearing of a profile cleared or asked for recently is returned without
    clearing again, however many profiles are cleared in between once it was asked for;
    older ones are dropped (least recently used first) and cleared anew. A result remembered
    from the caller (checked to be of the profile's bids) also gives the profile's outcome,
    and a model given the truthful clearing does not clear it. A run and its strategic
    metrics clear no set of bids twice, but for the final profile once more if its full
    result was dropped during the game."""
    built, space = make_scheme(folder, "three_tx")
    ev = GameEvaluator(built, BidMap(built.bids, space), "pay_as_bid", results_kept=2)
    profiles = [{**ev.bid_map.truthful(), "A": (k, 0)} for k in range(4)]
    results = [ev.result(p) for p in profiles[:3]]
    assert ev.clearings == 3
    assert ev.result(profiles[2]) is results[2] and ev.result(profiles[1]) is results[1]
    assert ev.clearings == 3
    certificate(ev, profiles[3])  # clears other profiles: the ones asked for stay
    assert ev.result(profiles[1]) is results[1]
    assert ev.result(profiles[0]) is not results[0]  # asked for longest ago: cleared anew
    clearings = ev.clearings
    other = GameEvaluator(built, BidMap(built.bids, space), "pay_as_bid")
    out = other.remember(profiles[1], results[1])
    assert other.clearings == 0 and other.result(profiles[1]) is results[1]
    assert out.cost_eur == results[1].cost_eur == other.outcome(profiles[1]).cost_eur
    with pytest.raises(FlexgameInputError, match="other bids"):
        other.remember(profiles[2], results[1])
    assert ev.clearings == clearings
    truthful = built.clear()
    model = FlexMarketModel(built, space, ibr("gauss_seidel"), truthful=truthful)
    assert model.evaluator.clearings == 0  # the start is the truthful profile it was given
    assert model.evaluator.result(model.profile) is truthful
    cleared = []  # the bids of every clearing from here on
    clear = built.clear

    def recording_clear(*declared, **options):
        cleared.append((tuple(None if d is None else d.tobytes() for d in declared),
                        options.get("ranging", False)))
        return clear(*declared, **options)

    built.clear = recording_clear
    model = run_model(built, space, ReasoningConfig("level_k", level=2))
    final = model.evaluator.result(model.profile)
    found = certified_outcome(model.evaluator, model.status, model.profile, model.cycle)
    metrics = strategic_metrics(model.evaluator, found, model.status, model.round,
                                model.profile, model.cycle, 100.0)
    assert model.evaluator.result(model.profile) is final
    assert metrics["hhi_by_layer"] == final.statistics.hhi().to_dict()
    # at most the final profile twice: in the game (its full result since dropped) and now;
    # a profile is cleared once more with price ranging when players deviate from it
    plain = [bids for bids, ranged in cleared if not ranged]
    ranged = [bids for bids, ranged in cleared if ranged]
    assert len(cleared) > model.evaluator.clearings and len(set(plain)) >= len(plain) - 1
    assert len(set(ranged)) == len(ranged)


def test_reprs_are_one_short_line(folder):
    """Every object of games/ and agents/ prints as one line with its essentials."""
    built, _ = make_scheme(folder, "three_tx")
    model = FlexMarketModel(built, reasoning=ReasoningConfig("ibr", max_rounds=3))
    assert model.bid_map.space.markups == StrategyConfig().space().markups  # space=None: the default
    model.run()
    space = StrategySpace(markups=[1.0, 1.5], withholding=[0.0, 0.5], per_resource=True)
    objects = [model, model.evaluator, model.bid_map, space, StrategySpace(),
               best_response(model.evaluator, model.profile, "A"),
               certificate(model.evaluator, model.profile), model.current_outcome,
               *model.agents]
    for obj in objects:
        text = repr(obj)
        assert "\n" not in text and len(text) < 200 and " at 0x" not in text, text
    assert repr(StrategySpace()) == ("StrategySpace(15 multiplicative markups 1.0-2.4, cap 500 "
                                     "EUR/MW, 1 withholding level)")


def test_model_truthful_reasoning_does_not_move(folder):
    built, space = make_scheme(folder, "edgeworth")
    model = FlexMarketModel(built, space, ReasoningConfig("truthful"), seed=0)
    model.run()
    assert model.status == "truthful" and model.round == 0
    assert model.profile == {"A": (0, 0), "B": (0, 0)}


def test_unknown_reasoning_is_rejected_with_the_allowed_names(folder):
    with pytest.raises(FlexgameInputError) as err:
        ReasoningConfig("best_guess").validate()
    for name in REASONINGS:
        assert name in str(err.value)
    assert "best_guess" in str(err.value)
    built, space = make_scheme(folder, "edgeworth")
    with pytest.raises(FlexgameInputError, match="best_guess"):
        FlexMarketModel(built, space, ReasoningConfig("best_guess"))


@pytest.mark.parametrize("bad", [dict(update="random"), dict(level0="lucky"),
                                 dict(max_rounds=0), dict(level=-1), dict(tau=0.0)])
def test_reasoning_config_validation(bad):
    with pytest.raises(FlexgameInputError):
        ReasoningConfig(**bad).validate()


# --- strategy spaces -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(markups=[1.2, 1.5, 2.0]),  # does not start at truthful
    dict(markups=[1.0, 1.5, 1.2]),  # decreasing
    dict(markups=[1.0, 1.2, 1.2]),  # not strictly increasing
    dict(markups=[]),
    dict(markups=[1.0, 2.0], kind="additive"),  # additive truthful is 0
    dict(markups=[0.0, 5.0, 3.0], kind="additive"),
    dict(kind="percent"),
    dict(withholding=[0.1, 0.2]),
    dict(withholding=[0.0, 1.0]),
    dict(price_cap=0.0),
])
def test_strategy_space_validation(kwargs):
    with pytest.raises(FlexgameInputError):
        StrategySpace(**kwargs)


def test_strategy_space_prices_respect_the_cap():
    space = StrategySpace(markups=[1.0, 1.5, 3.0], price_cap=40.0)
    cost = np.array([10.0, 20.0, 50.0])
    assert space.price(cost, 0).tolist() == [10.0, 20.0, 50.0]  # truthful, even above the cap
    assert space.price(cost, 1).tolist() == [15.0, 30.0, 50.0]
    assert space.price(cost, 2).tolist() == [30.0, 40.0, 50.0]
    additive = StrategySpace(markups=[0.0, 5.0], kind="additive", price_cap=12.0)
    assert additive.price(np.array([4.0, 10.0]), 1).tolist() == [9.0, 12.0]
    assert StrategySpace(markups=[1.0, 2.0], withholding=[0.0, 0.5]).strategies == \
        [(0, 0), (0, 1), (1, 0), (1, 1)]


# --- the clearing is a function of the declared bids alone ---------------------------------

def test_clearing_of_tied_bids_does_not_depend_on_solve_history(folder):
    """Both Edgeworth FSPs at the cap (30 EUR/MW, 6 MW each, need 10): a fresh scheme gives
    the 6 MW to one FSP; the same bids cleared right after another profile must be split the
    same way."""
    allocations = []
    for before in (None, {"A": (3, 0), "B": (4, 0)}, {"A": (4, 0), "B": (3, 0)}):
        built, space = make_scheme(folder, "edgeworth")
        bid_map = BidMap(built.bids, space)
        if before is not None:
            built.clear(*bid_map.declare(before))
        allocations.append(built.clear(*bid_map.declare({"A": (4, 0), "B": (4, 0)}))
                           .activation_mw.tolist())
    assert allocations[1] == allocations[0] and allocations[2] == allocations[0]


# --- the MPEC best response cross-checks the grid search ---------------------------------------

def random_game(folder, rng, congested: bool):
    """Three FSPs with costs drawn uniformly (no two declared prices coincide on the grid,
    so the follower's optimum is unique): two transmission FSPs and one with a transmission
    and a distribution bid below the (optionally congested) feeder branch."""
    cost = rng.uniform(10.0, 30.0, size=4)
    size = rng.uniform(2.0, 6.0, size=4)
    rows = [tx_bid("A", 2, size[0], cost[0]), tx_bid("B", 3, size[1], cost[1]),
            tx_bid("C", 2, size[2], cost[2]), feeder_bid("C", 3, size[3], cost[3])]
    need = float(rng.uniform(0.3, 0.9) * size.sum())
    built = build_scheme(tiny_system(folder, need, congested=congested), bid_table(rows),
                         "common")
    space = StrategySpace(markups=[1.0, 1.15, 1.4, 1.8, 2.5], price_cap=500.0)  # never binds
    return GameEvaluator(built, BidMap(built.bids, space), "pay_as_bid")


@pytest.mark.parametrize("congested", [False, True])
def test_mpec_best_response_equals_the_grid_best_response(folder, congested):
    """With a unique follower optimum the MPEC MILP (KKT / strong duality of the common LP)
    finds the grid best response: same profit, and its markup earns that profit when the
    scheme is re-cleared. Checked for every FSP at random profiles of random games."""
    rng = np.random.default_rng(11 if congested else 5)
    checked = 0
    for _ in range(4):
        ev = random_game(folder, rng, congested)
        strategies = ev.bid_map.space.strategies
        for _ in range(3):
            profile = {f: strategies[rng.integers(len(strategies))] for f in ev.bid_map.fsps}
            for f in ev.bid_map.fsps:
                grid = best_response(ev, profile, f)
                mpec = mpec_best_response(ev, profile, f)
                assert mpec.optimal
                assert mpec.profit_eur == pytest.approx(grid.payoff, abs=1e-4)
                assert grid.payoffs[mpec.strategy] == pytest.approx(grid.payoff, abs=1e-4)
                checked += 1
    assert checked == 36


@pytest.mark.parametrize("game", EQUILIBRIUM_GAMES + ("edgeworth", "local"))
def test_mpec_is_an_upper_bound_when_prices_tie(folder, game):
    """Where declared prices tie (identical costs), the follower has several optima; the MPEC
    picks the one best for the leader (optimistic bilevel solution), so its profit is never
    below the grid best response."""
    ev = make_evaluator(folder, game)
    strategies = ev.bid_map.space.strategies
    rng = np.random.default_rng(3)
    for _ in range(8):
        profile = {f: strategies[rng.integers(len(strategies))] for f in ev.bid_map.fsps}
        for f in ev.bid_map.fsps:
            grid = best_response(ev, profile, f)
            mpec = mpec_best_response(ev, profile, f)
            assert mpec.optimal and mpec.profit_eur >= grid.payoff - 1e-4


def test_mpec_refuses_what_it_does_not_cover(folder):
    ev = make_evaluator(folder, "three_tx", scheme="ml01")
    with pytest.raises(FlexgameInputError, match="common"):
        mpec_best_response(ev, ev.bid_map.truthful(), "A")
    ev = make_evaluator(folder, "three_tx", withholding=[0.0, 0.5])
    with pytest.raises(FlexgameInputError, match="markup-only"):
        mpec_best_response(ev, ev.bid_map.truthful(), "A")


def test_mpec_matches_the_grid_on_the_default_system(system):
    """The same cross-check on the default common market (PTDF + both feeders' LinDistFlow),
    random pools at half liquidity: bid costs are drawn continuously, so prices do not tie."""
    bids = generate_bids(system, BidConfig(case="A", liquidity=0.5, aggregation="random_pools"),
                         np.random.default_rng(0))
    built = build_scheme(system, bids, "common")
    space = StrategySpace(markups=[1.0, 1.1, 1.25, 1.5, 2.0], price_cap=500.0)
    ev = GameEvaluator(built, BidMap(bids, space), "pay_as_bid")
    rng = np.random.default_rng(2)
    profiles = [ev.bid_map.truthful(),
                {f: space.strategies[rng.integers(len(space.strategies))] for f in ev.bid_map.fsps}]
    gains = []
    for profile in profiles:
        for f in ev.bid_map.fsps[:6]:
            grid = best_response(ev, profile, f)
            mpec = mpec_best_response(ev, profile, f)
            assert mpec.optimal
            assert mpec.profit_eur == pytest.approx(grid.payoff, abs=1e-4)
            assert grid.payoffs[mpec.strategy] == pytest.approx(grid.payoff, abs=1e-4)
            gains.append(grid.payoff)
    assert max(gains) > 0  # some FSP has a profitable markup: the check is not all zeros


# --- per-resource strategies of an aggregating FSP ------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_per_resource_players_reach_a_brute_force_equilibrium(folder, mode):
    """The pooled game with ``per_resource``: A and B each price their transmission and
    distribution resource separately (4 players, payoff = the owning FSP's profit). Brute
    force over the 5-player game: the model's IBR from truthful converges to one of its pure
    equilibria (every round the brute-force round), with a zero certificate."""
    built, space = make_scheme(folder, "pooled", per_resource=True)
    model = run_model(built, space, ibr(mode))
    bm = model.bid_map
    assert bm.players == ["A/0", "A/1", "B/2", "B/3", "C/4"]
    assert bm.owner["A/1"] == "A" and bm.fsps == ["A", "B", "C"]
    game, equilibria = brute(model.evaluator)
    assert equilibria and model.status == "converged"
    assert_ibr_is_brute_force(model, game, mode)


def test_per_resource_payoff_is_the_owner_profit(folder):
    """Both resource players of A are paid A's total profit, and pricing one resource of A
    differently from the other changes the declared prices of that bid only."""
    ev = make_evaluator(folder, "pooled", per_resource=True)
    profile = {**ev.bid_map.truthful(), "A/1": (2, 0)}
    out = ev.outcome(profile)
    assert ev.payoff(profile, "A/0") == ev.payoff(profile, "A/1") == out.profit["A"]
    price, _, forward = ev.bid_map.declare(profile)
    assert forward is None
    assert price.tolist() == [10.0, 15.0 * 1.5, 12.0, 14.0, 20.0]


def test_model_with_per_resource_players_names_each_resource(folder):
    """The Mesa model makes one FSP agent per resource player, tagged with its FSP, and the
    rounds table carries both."""
    built, space = make_scheme(folder, "pooled", per_resource=True)
    model = FlexMarketModel(built, space, ReasoningConfig("ibr", max_rounds=5), seed=0)
    model.run()
    table = model.rounds_table()
    assert set(table.player) == {"A/0", "A/1", "B/2", "B/3", "C/4"}
    assert set(table.fsp) == {"A", "B", "C"}
    last = table[table.step == table.step.max()]
    assert (last.groupby("fsp").profit_eur.nunique() == 1).all()  # one profit per FSP


# --- re-pricing forwarded bids -----------------------------------------------------------------

def forwarding_scheme(folder, scheme):
    """Uncongested feeder (the DSO needs nothing): in ml01 the feeder bid F (3 MW, cost 15) is
    offered first in the DSO layer (not cleared) and forwarded to the TSO layer; the TSO needs
    5 MW, T offers 4 MW at 30."""
    rows = [tx_bid("T", 2, 4, 30), feeder_bid("F", 3, 3, 15)]
    return build_scheme(tiny_system(folder, 5.0), bid_table(rows), scheme)


@pytest.mark.parametrize("scheme", ["ml01", "ml05", "common"])
def test_forwarded_price_applies_after_the_first_layer(folder, scheme):
    """F declares 15 for its first layer and 25 for later ones. ml01 (DSO first): the TSO
    buys F's 3 MW at the forwarded 25 (pay-as-bid cost 3 x 25 + 2 x 30 = 135); common and
    ml05 (TSO first): F clears in its first layer at 15 (3 x 15 + 2 x 30 = 105)."""
    built = forwarding_scheme(folder, scheme)
    price = np.array([30.0, 15.0])
    result = built.clear(price, np.array([4.0, 3.0]), np.array([30.0, 25.0]))
    f_price = 25.0 if scheme == "ml01" else 15.0
    assert result.activation_mw.tolist() == pytest.approx([2.0, 3.0])
    assert result.cost_eur == pytest.approx(3 * f_price + 2 * 30.0)
    paid = settle(built, result, "pay_as_bid")
    assert paid.bid_payment_eur.tolist() == pytest.approx([60.0, 3 * f_price])
    rows = paid.payments.set_index("bid")
    assert rows.price_eur_per_mw[1] == pytest.approx(f_price)


def test_repricing_strategies_and_their_game(folder):
    """With ``reprice_forwarded`` a strategy is (markup, withholding, forwarded markup). In
    ml01 on the forwarding system only the TSO layer buys F, so F's first-layer markup is
    irrelevant and its forwarded markup k sets its profit against truthful T (4 MW at 30,
    ahead of F at equal price, lower bid id): k = 1.5 -> 22.5 sells 3 MW (3 x 7.5 = 22.5);
    k = 2 -> 30 ties T, sells the 1 MW residual (15); k = 2.5 -> 37.5 sells the residual
    (22.5). Best response: the lowest of the tied best, (0, 0, 1). IBR lands on a brute-force
    equilibrium of the 3-index game."""
    built = forwarding_scheme(folder, "ml01")
    space = StrategySpace(markups=[1.0, 1.5, 2.0, 2.5], price_cap=100.0, reprice_forwarded=True)
    assert len(space.strategies) == 16 and space.truthful == (0, 0, 0)
    ev = GameEvaluator(built, BidMap(built.bids, space), "pay_as_bid")
    br = best_response(ev, ev.bid_map.truthful(), "F")
    expected = {0: 0.0, 1: 22.5, 2: 15.0, 3: 22.5}
    for (first, _, forward), value in br.payoffs.items():
        assert value == pytest.approx(expected[forward]), (first, forward)
    assert br.strategy == (0, 0, 1) and br.payoff == pytest.approx(22.5)
    model = run_model(built, space, ibr("gauss_seidel"))
    assert model.status == "converged"
    assert_ibr_is_brute_force(model, brute(model.evaluator)[0], "gauss_seidel")


# --- logit quantal response: mixed profiles evaluated by sampling ---------------------------

def test_logit_response_estimates_expected_payoffs_by_sampling(folder):
    """Edgeworth game (no pure equilibrium), opponents mixed: the sampled expected payoff of
    every strategy lies within 4 standard errors of the exact expectation computed from the
    brute-force payoff table; the new mixed strategy is the softmax of the estimates; the
    reported regret is best estimate minus the estimate under the old mixed strategy."""
    ev = make_evaluator(folder, "edgeworth")
    game, _ = brute(ev)
    strategies = ev.bid_map.space.strategies
    rng = np.random.default_rng(4)
    mixed = {p: rng.dirichlet(np.ones(len(strategies))) for p in game.players}
    lam = 0.05
    step = logit_response(lambda p, d: sampled_payoffs(ev, d, p), mixed, strategies, lam, 400,
                          np.random.default_rng(9))
    for f in game.players:
        exact = expected_payoffs(game, mixed, f)
        estimate = step.expected_payoff[f]
        assert step.standard_error[f] > 0
        assert np.all(np.abs(estimate - exact) <= 4 * step.standard_error[f])
        z = np.exp(lam * (estimate - estimate.max()))
        assert step.mixed[f] == pytest.approx(z / z.sum())
        assert step.regret[f] == pytest.approx(estimate.max() - mixed[f] @ estimate)


def test_logit_limits(folder):
    """lambda = 0: the uniform mixed strategy; a large lambda against pure (point-mass)
    opponents: the mass is spread evenly over the best responses to truthful bidding."""
    ev = make_evaluator(folder, "three_tx")
    n = len(ev.bid_map.space.strategies)
    index = {s: i for i, s in enumerate(ev.bid_map.space.strategies)}
    point = {p: np.eye(n)[index[s]] for p, s in ev.bid_map.truthful().items()}
    strategies = ev.bid_map.space.strategies

    def payoffs(p, profiles):
        return sampled_payoffs(ev, profiles, p)

    uniform = logit_response(payoffs, point, strategies, 0.0, 3, np.random.default_rng(0))
    assert all(m == pytest.approx(np.full(n, 1 / n)) for m in uniform.mixed.values())
    sharp = logit_response(payoffs, point, strategies, 50.0, 3, np.random.default_rng(0))
    for p, m in sharp.mixed.items():
        payoffs = best_response(ev, ev.bid_map.truthful(), p).payoffs
        best = [index[s] for s, v in payoffs.items() if v >= max(payoffs.values()) - 1e-9]
        assert m[best] == pytest.approx(np.full(len(best), 1 / len(best)))
    assert all(e == 0.0 for e in sharp.standard_error.values())  # opponents are pure


def test_logit_model_reports_a_sampled_mixed_outcome(folder):
    """The Mesa model under logit keeps a mixed strategy per player, reports the expected
    markup and the sample mean cost per round, and the strategic metrics of its final mixed
    profile are exact over its support (small enough to enumerate)."""
    built, space = make_scheme(folder, "edgeworth")
    reasoning = ReasoningConfig("logit", max_rounds=6, rationality=0.05, samples=30)
    model = FlexMarketModel(built, space, reasoning, seed=3)
    model.run()
    assert model.status == "logit" and model.round == 6
    assert all(a.mixed is not None and a.mixed.sum() == pytest.approx(1.0) for a in model.fsps)
    frame = model.datacollector.get_model_vars_dataframe()
    last = model.current_outcome
    assert frame.procurement_cost_eur.iloc[-1] == pytest.approx(last.cost_eur)
    assert last.cost_eur == pytest.approx(np.mean([model.evaluator.outcome(p).cost_eur
                                                   for p in model.sample]))
    found = certified_outcome(model.evaluator, model.status, model.profile, model.cycle,
                              model.mixed, samples=30, rng=np.random.default_rng(0))
    metrics = strategic_metrics(model.evaluator, found, model.status, model.round,
                                model.profile, model.cycle, 100.0)
    assert metrics["equilibrium_concept"] == "logit quantal response"
    assert metrics["support_size"] == 5 ** 2  # every strategy has positive probability
    # a support of 25 profiles is enumerated: expectations and epsilon are exact
    assert np.isnan(metrics["cost_standard_error"]) and np.isnan(metrics["epsilon_standard_error"])
    assert metrics["epsilon"] > 0
    assert 100.0 <= metrics["strategic_cost"] <= 300.0  # 10 MW between cost 10 and the cap 30


def test_pivotal_suppliers_per_layer(folder):
    """The local game in ml01: L alone can relieve the congested feeder branch, so it is
    pivotal in the DSO layer and only there (the TSO need is covered by T and T2 with room
    to spare); in common the same FSP is pivotal in the one joint layer."""
    for scheme, layer in (("ml01", "dso:feeder"), ("common", "common")):
        ev = make_evaluator(folder, "local", scheme=scheme)
        pivotal = pivotal_suppliers(ev, ev.bid_map.truthful())
        assert pivotal.pop(layer) == ["L"]
        assert all(fsps == [] for fsps in pivotal.values())
