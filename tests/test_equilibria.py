"""Equilibria with certificates (games.normal_form, games.equilibria, games.no_regret) checked
against brute force and independent solvers on tiny markets.

Every game is cleared on the tiny market of :mod:`tiny_market` (transmission bids only, the
grid never binds): FSPs of limited capacity compete for one TSO need. When every FSP is
pivotal (the others' capacity falls short of the need) best responses cycle
(Bertrand-Edgeworth) and pay-as-bid has no pure equilibrium. The oracles: the whole game's
payoff table enumerated from the evaluator, nashpy's vertex enumeration of the full bimatrix,
and expectations, regrets and empirical distributions computed from that table.
"""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.games.best_response import best_response
from flexgame.games.double_oracle import (
    check_clearings,
    double_oracle,
    solve_restricted,
    strategy_sets_of,
)
from flexgame.games.dynamics import iterated_best_response, play
from flexgame.games.equilibria import (
    COARSE_CORRELATED,
    MIXED_NASH,
    PURE_NASH,
    equilibria_from_starts,
    find_equilibrium,
    mixed_equilibrium,
)
from flexgame.games.mixed import (
    correlated_deviations,
    distinct_profiles,
    mixed_deviations,
    support_profiles,
)
from flexgame.games.no_regret import regret_matching
from flexgame.games.normal_form import (
    expected_cost,
    expected_payoffs,
    mixed_regrets,
    payoff_table,
    pure_equilibria,
    regrets,
    to_gambit,
    to_nashpy,
)
from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import BidMap, StrategySpace
from flexgame.markets.schemes import build_scheme
from tiny_market import bid_table, tiny_system, tx_bid

TOL = 1e-3  # EUR: the epsilon target of the searches
SIX = [1.0, 1.3, 1.6, 2.0, 2.5, 3.0]
FIVE = [1.0, 1.5, 2.0, 2.5, 3.0]

# name -> (TSO need [MW], truthful bids (fsp, bus, MW, EUR/MW), markups, price cap [EUR/MW])
GAMES = {
    # need 10 MW, two FSPs of 6 MW: both pivotal
    "duopoly": (10.0, [("A", 2, 6, 10), ("B", 3, 6, 11)], SIX, 30.0),
    # need 14 MW, three FSPs of 6 MW: all pivotal
    "triopoly": (14.0, [("A", 2, 6, 10), ("B", 3, 6, 11), ("C", 2, 6, 12)], SIX, 30.0),
    # need 17 MW, four FSPs of 5 MW: all pivotal
    "four": (17.0, [("A", 2, 5, 10), ("B", 3, 5, 11), ("C", 2, 5, 12), ("D", 3, 5, 13)],
             FIVE, 30.0),
    # need 10 MW, three FSPs of 4 MW, all needed: two pure equilibria (218 and 236 EUR)
    "three_tx": (10.0, [("A", 2, 4, 10), ("B", 3, 4, 12), ("C", 2, 4, 15)],
                 [1.0, 1.2, 1.5, 2.0], 30.0),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_equilibria")


def evaluator(folder, game: str, settlement: str = "pay_as_bid") -> GameEvaluator:
    """A fresh scheme and evaluator for ``game``."""
    need, rows, markups, cap = GAMES[game]
    built = build_scheme(tiny_system(folder, need), bid_table([tx_bid(*r) for r in rows]),
                         "common")
    space = StrategySpace(markups=markups, price_cap=cap)
    return GameEvaluator(built, BidMap(built.bids, space), settlement)


def ibr(ev: GameEvaluator, start=None):
    """Gauss-Seidel iterated best response (players in order) from truthful bids."""
    start = start or ev.bid_map.truthful()
    respond = lambda p, profile: best_response(ev, profile, p).strategy  # noqa: E731
    return play(iterated_best_response(respond, start, ev.bid_map.players), start)


def arrays(game, mixed) -> dict[str, np.ndarray]:
    """A mixed profile as probabilities over each player's strategies in the table."""
    return {p: np.array([mixed[p].get(s, 0.0) for s in game.strategies[p]])
            for p in game.players}


# --- normal form ---------------------------------------------------------------------------------

def test_payoff_table_restricted_to_strategy_sets(folder):
    """A restricted table (two players active on two strategies each, the third fixed) holds
    the evaluator's payoffs and costs at every profile; regrets, pure equilibria and the
    nashpy and Gambit games are read off the same numbers."""
    ev = evaluator(folder, "triopoly")
    sets = {"A": [(0, 0), (4, 0)], "C": [(2, 0), (5, 0)]}
    game = payoff_table(ev, sets, {"B": (3, 0), "A": (1, 0)})  # A's fixed entry is overridden
    assert game.players == ["A", "C"] and game.fixed == {"B": (3, 0)} and game.shape == (2, 2)
    for profile in game.profiles():
        assert set(profile) == {"A", "B", "C"}
        for p in game.players:
            assert game.payoff(profile, p) == ev.payoff(profile, p)
        assert game.cost_eur[game.index(profile)] == ev.outcome(profile).cost_eur
        r = regrets(game, profile)
        for p in game.players:
            dev = game.deviation_payoffs(profile, p)
            assert r[p] == pytest.approx(max(dev.values()) - dev[profile[p]])
    equilibria = pure_equilibria(game)
    assert equilibria == [d for d in game.profiles() if max(regrets(game, d).values()) <= 1e-6]
    a, b = to_nashpy(game).payoff_matrices
    assert np.array_equal(a, game.payoffs["A"]) and np.array_equal(b, game.payoffs["C"])
    g = to_gambit(game)
    assert [p.label for p in g.players] == ["A", "C"]
    for profile in game.profiles():
        i, j = game.index(profile)
        for player, name in zip(g.players, game.players):
            assert float(g[i, j][player]) == pytest.approx(game.payoff(profile, name))
    with pytest.raises(ValueError, match="no strategy for players"):
        payoff_table(ev, sets)


def test_expected_payoffs_of_a_mixed_profile_in_the_table(folder):
    """Expected payoffs contract the table with the others' mixed strategies: equal to the sum
    over pure profiles weighted by their probabilities."""
    ev = evaluator(folder, "triopoly")
    game = payoff_table(ev)
    rng = np.random.default_rng(3)
    mixed = {p: rng.dirichlet(np.ones(n)) for p, n in zip(game.players, game.shape)}
    for p in game.players:
        brute = np.zeros(game.shape[game.players.index(p)])
        for index in np.ndindex(*game.shape):
            weight = np.prod([mixed[q][i] for q, i in zip(game.players, index) if q != p])
            brute[index[game.players.index(p)]] += weight * game.payoffs[p][index]
        assert expected_payoffs(game, mixed, p) == pytest.approx(brute)
    cost = sum(np.prod([mixed[q][i] for q, i in zip(game.players, index)]) * game.cost_eur[index]
               for index in np.ndindex(*game.shape))
    assert expected_cost(game, mixed) == pytest.approx(cost)


# --- two players: nashpy's equilibria of the full bimatrix are the oracle -----------------------

@pytest.mark.parametrize("settlement", ["pay_as_bid", "uniform"])
@pytest.mark.parametrize("start", ["truthful", "ibr", "full"])
def test_two_player_double_oracle_finds_an_equilibrium_of_the_full_bimatrix(folder, settlement,
                                                                          start):
    """Two pivotal FSPs (need 10 MW, 6 MW each). The double oracle from the truthful profile
    (strategy sets grow from one strategy each), from where IBR ended, or from the whole game
    converges to a mixed profile equal (within 1e-6 in every probability) to one of the
    equilibria nashpy's vertex enumeration finds in the full payoff bimatrix, and its epsilon,
    recomputed from the full table, is below the tolerance and equal to the one it reports.
    Pay-as-bid has no pure equilibrium (the equilibrium mixes); from truthful bids the oracle
    has to add strategies."""
    ev = evaluator(folder, "duopoly", settlement)
    game = payoff_table(ev)
    nash = list(to_nashpy(game).vertex_enumeration())
    assert (pure_equilibria(game) == []) == (settlement == "pay_as_bid")
    sets = {"truthful": {p: [(0, 0)] for p in game.players},
            "ibr": strategy_sets_of(ibr(ev).cycle or [ibr(ev).profile]),
            "full": dict(game.strategies)}[start]
    result = double_oracle(ev, sets, tol=TOL)
    assert result.converged and result.stopped == ""
    if start == "truthful":
        assert result.iterations > 1
    found = arrays(game, result.mixed)
    assert any(np.abs(found["A"] - x).max() <= 1e-6 and np.abs(found["B"] - y).max() <= 1e-6
               for x, y in nash)
    exact = mixed_regrets(game, found)
    assert max(exact.values()) <= TOL
    assert result.deviations.regret == pytest.approx(exact, abs=1e-9)
    if settlement == "pay_as_bid":
        assert all(len(result.mixed[p]) > 1 for p in game.players)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # nashpy's pivots on a degenerate game
def test_restricted_two_player_solver_picks_the_cheapest_equilibrium(folder):
    """Uniform pricing of the duopoly has many equilibria; of those Lemke-Howson reaches,
    the restricted solver returns one of lowest expected procurement cost."""
    ev = evaluator(folder, "duopoly", "uniform")
    game = payoff_table(ev)
    solution = solve_restricted(game, TOL)
    assert solution.solver == "nashpy Lemke-Howson" and solution.regret <= TOL / 2
    reached = []
    for x, y in to_nashpy(game).lemke_howson_enumeration():
        mixed = {"A": x, "B": y}
        if max(mixed_regrets(game, mixed).values()) <= TOL / 2:
            reached.append(expected_cost(game, mixed))
    assert expected_cost(game, solution.mixed) == pytest.approx(min(reached))


# --- three and four players without a pure equilibrium ----------------------------------------

@pytest.mark.parametrize("game_name", ["triopoly", "four"])
@pytest.mark.parametrize("start", ["ibr", "truthful"])
def test_n_player_mixed_equilibrium_has_a_small_exact_epsilon(folder, game_name, start):
    """Three (four) pivotal FSPs: the whole payoff table has no pure equilibrium; from where
    IBR cycled, or from truthful bids, the search reports a mixed Nash equilibrium (Gambit on
    the restricted games) whose exact epsilon, recomputed from the full table, is below the
    tolerance; its expected cost and profits are the table's expectations."""
    ev = evaluator(folder, game_name)
    game = payoff_table(ev)
    assert pure_equilibria(game) == []
    visited = ibr(ev) if start == "ibr" else [ev.bid_map.truthful()]
    if start == "ibr":
        assert visited.status == "cycle"
    eq = find_equilibrium(ev, visited, np.random.default_rng(0), tol=TOL)
    assert eq.concept == MIXED_NASH and "gambit" in eq.note
    found = arrays(game, eq.mixed)
    exact = mixed_regrets(game, found)
    assert max(exact.values()) <= TOL
    assert eq.epsilon == pytest.approx(max(exact.values()), abs=1e-9)
    assert np.isnan(eq.epsilon_standard_error)
    assert eq.support_size == len(eq.profiles) == np.prod([len(m) for m in eq.mixed.values()])
    assert eq.probabilities.sum() == pytest.approx(1.0)
    assert eq.outcome.cost_eur == pytest.approx(expected_cost(game, found))
    for p in game.players:
        value = found[p] @ expected_payoffs(game, found, p)
        assert eq.outcome.profit[p] == pytest.approx(value)


def test_sampled_epsilon_of_a_mixed_profile(folder):
    """A mixed profile whose support exceeds ``max_profiles`` is evaluated on seeded samples:
    each player's sampled regret lies within 4 standard errors of the exact one, the
    standard errors are positive, and the same seed gives the same estimate; without a
    generator it refuses."""
    ev = evaluator(folder, "triopoly")
    game = payoff_table(ev)
    rng = np.random.default_rng(5)
    probabilities = {p: rng.dirichlet(np.ones(n)) for p, n in zip(game.players, game.shape)}
    mixed = {p: dict(zip(game.strategies[p], q)) for p, q in probabilities.items()}
    exact = mixed_regrets(game, probabilities)
    assert mixed_deviations(ev, mixed).regret == pytest.approx(exact, abs=1e-9)
    sampled = mixed_deviations(ev, mixed, max_profiles=10, samples=300,
                               rng=np.random.default_rng(1))
    for p in game.players:
        assert sampled.standard_error[p] > 0
        assert abs(sampled.regret[p] - exact[p]) <= 4 * sampled.standard_error[p]
    again = mixed_deviations(ev, mixed, max_profiles=10, samples=300,
                             rng=np.random.default_rng(1))
    assert again.regret == sampled.regret
    eq = mixed_equilibrium(ev, mixed, max_profiles=10, samples=300, rng=np.random.default_rng(1))
    assert eq.support_size == 6 ** 3 and len(eq.profiles) == 300
    assert eq.epsilon_standard_error > 0
    with pytest.raises(ValueError, match="rng"):
        mixed_deviations(ev, mixed, max_profiles=10)


# --- coarse correlated equilibrium from regret matching ---------------------------------------

@pytest.mark.parametrize("game_name,seed", [("duopoly", 0), ("duopoly", 1), ("triopoly", 2)])
def test_regret_matching_regret_is_the_cce_epsilon_and_respects_its_bound(folder, game_name,
                                                                         seed):
    """Regret matching for 300 rounds: every player's largest average regret is below
    Delta sqrt(S - 1) / sqrt(T) (Hart & Mas-Colell); it equals the coarse-correlated epsilon
    of the empirical distribution (the evaluator's, and one computed from the full payoff
    table), with no sampling error."""
    ev = evaluator(folder, game_name)
    game = payoff_table(ev)
    rounds = 300
    learning = regret_matching(ev, ev.bid_map.truthful(), rounds, np.random.default_rng(seed))
    assert learning.rounds == rounds and learning.stopped == ""
    bound = learning.bound(len(ev.bid_map.space.strategies))
    for p in game.players:
        assert 0 <= learning.regret[p] <= bound[p]
    # the empirical distribution's epsilon, from the table: fixed strategy s in every round
    for p in game.players:
        axis = game.players.index(p)
        by_strategy, played = np.zeros(game.shape[axis]), 0.0
        for d in learning.profiles:
            index = list(game.index(d))
            played += game.payoffs[p][tuple(index)] / rounds
            index[axis] = slice(None)
            by_strategy += game.payoffs[p][tuple(index)] / rounds
        assert learning.regret[p] == pytest.approx(max(by_strategy.max() - played, 0), abs=1e-9)
    support, probabilities = distinct_profiles(ev, learning.profiles)
    assert probabilities.sum() == pytest.approx(1.0) and len(support) < rounds
    deviations = correlated_deviations(ev, support, probabilities)
    assert deviations.regret == pytest.approx(learning.regret, abs=1e-9)
    assert deviations.epsilon == pytest.approx(learning.epsilon, abs=1e-9)
    assert learning.epsilon < 0.1 * max(bound.values())  # well inside the bound: learning works


def test_budget_exceeded_falls_back_to_a_coarse_correlated_equilibrium(folder):
    """With a restricted-game budget too small for the cycle's strategies the double oracle
    stops and says why; the search then reports the coarse correlated equilibrium of regret
    matching, certified by its exact epsilon, reproducible with the same seed."""
    ev = evaluator(folder, "triopoly")
    run = ibr(ev)
    oracle = double_oracle(ev, strategy_sets_of(run.cycle), max_profiles=4)
    assert not oracle.converged and "max_profiles=4" in oracle.stopped
    found = [find_equilibrium(ev, run, np.random.default_rng(7), max_profiles=4, cce_rounds=200)
             for _ in range(2)]
    eq = found[0]
    assert eq.concept == COARSE_CORRELATED and "max_profiles=4" in eq.note
    assert eq.mixed is None and np.isnan(eq.epsilon_standard_error)
    assert eq.support_size == len(eq.profiles) and eq.probabilities.sum() == pytest.approx(1.0)
    assert eq.epsilon == correlated_deviations(ev, eq.profiles, eq.probabilities).epsilon
    assert eq.same_distribution(found[1]) and eq.epsilon == found[1].epsilon
    assert "\n" not in repr(eq) and len(repr(eq)) < 200


def test_clearing_budget_stops_the_double_oracle_before_it_is_exceeded(folder):
    """With ``max_clearings`` the double oracle never starts a restricted game or a full-game
    check that could take it past the budget (:func:`check_clearings` bounds the check's
    clearings: a fresh evaluator runs no more), and says so; without a budget it converges."""
    ev = evaluator(folder, "four")
    sets = strategy_sets_of(ibr(ev).cycle)
    free = double_oracle(evaluator(folder, "four"), sets, tol=TOL)
    assert free.converged
    fresh = evaluator(folder, "four")
    before = fresh.clearings
    mixed_deviations(fresh, free.mixed)
    assert 0 < fresh.clearings - before <= check_clearings(free.mixed, len(fresh.bid_map.space.strategies))
    for budget in (10, free.clearings // 2):
        ev = evaluator(folder, "four")
        stopped = double_oracle(ev, sets, tol=TOL, max_clearings=budget)
        assert not stopped.converged and f"max_clearings={budget}" in stopped.stopped
        assert stopped.clearings <= budget


@pytest.mark.parametrize("game_name", ["triopoly", "four"])
def test_a_cycle_profile_within_tolerance_is_a_pure_equilibrium(folder, game_name):
    """When the double oracle stops on its budget, the first profile of the cycle whose
    epsilon (its largest regret, from the whole payoff table) is within the tolerance is
    reported as a pure equilibrium with that epsilon."""
    ev = evaluator(folder, game_name)
    game = payoff_table(ev)
    run = ibr(ev)
    support, _ = distinct_profiles(ev, run.cycle)
    epsilon = [max(regrets(game, d).values()) for d in support]
    assert min(epsilon) > 0  # no pure equilibrium: the tolerance decides
    tol = min(epsilon) * 1.001
    first = next(d for d, e in zip(support, epsilon) if e <= tol)
    eq = find_equilibrium(ev, run, np.random.default_rng(0), tol=tol, max_profiles=1)
    assert eq.concept == PURE_NASH and "a profile of the cycle" in eq.note
    assert eq.profiles == [first]
    assert eq.epsilon == pytest.approx(min(epsilon), abs=1e-9)


@pytest.mark.parametrize("game_name", ["triopoly", "four"])
def test_cycle_time_average_is_the_first_fallback_when_within_tolerance(folder, game_name):
    """When the double oracle stops on its budget, the time average of the best-response
    cycle (equal weight on its distinct profiles) is the result if its exact coarse-correlated
    epsilon, recomputed from the whole payoff table, is within the tolerance; with a
    tolerance below it, regret matching runs instead."""
    ev = evaluator(folder, game_name)
    game = payoff_table(ev)
    run = ibr(ev)
    assert run.status == "cycle" and len(run.cycle) > 1
    support, weights = distinct_profiles(ev, run.cycle)
    exact = 0.0  # the CCE epsilon of the cycle's time average, from the table
    for p in game.players:
        axis = game.players.index(p)
        by_strategy, played = np.zeros(game.shape[axis]), 0.0
        for d, w in zip(support, weights):
            index = list(game.index(d))
            played += w * game.payoffs[p][tuple(index)]
            index[axis] = slice(None)
            by_strategy += w * game.payoffs[p][tuple(index)]
        exact = max(exact, by_strategy.max() - played)
    assert exact > 0
    eq = find_equilibrium(ev, run, np.random.default_rng(0), tol=exact * 1.001, max_profiles=1)
    assert eq.concept == COARSE_CORRELATED and "time average of the cycle" in eq.note
    assert eq.epsilon == pytest.approx(exact, abs=1e-9)
    assert sorted(map(str, eq.profiles)) == sorted(map(str, support))
    assert np.allclose(eq.probabilities, 1 / len(support))
    learned = find_equilibrium(ev, run, np.random.default_rng(0), tol=exact * 0.5,
                               max_profiles=1, cce_rounds=50)
    assert "rounds of regret matching" in learned.note and "cycle's time average" in learned.note
    # the examination ends at the first player whose regret exceeds the bound
    screen = correlated_deviations(ev, support, weights, stop_above=exact * 0.5)
    regrets = list(screen.regret.values())
    assert regrets[-1] > exact * 0.5 and all(r <= exact * 0.5 for r in regrets[:-1])
    full = correlated_deviations(ev, support, weights, stop_above=exact * 1.001)
    assert list(full.regret) == game.players and full.epsilon == pytest.approx(exact, abs=1e-9)


# --- several starts: price of anarchy and of stability ------------------------------------------

def test_two_pure_equilibria_from_several_starts(folder):
    """Three capacity-limited FSPs, all needed, have two pure equilibria (brute force). IBR
    from truthful bids, from the top markup and from seeded random profiles reaches both; the
    search reports each once (a pure Nash equilibrium with epsilon 0), cheapest first, so the
    price of anarchy (dearest) is at least the price of stability (cheapest)."""
    ev = evaluator(folder, "three_tx")
    game = payoff_table(ev)
    pure = pure_equilibria(game)
    assert len(pure) == 2
    space = ev.bid_map.space
    rng = np.random.default_rng(0)
    starts = [ev.bid_map.truthful(), {p: space.uniform(3) for p in game.players}]
    starts += [{p: space.strategies[rng.integers(len(space.strategies))] for p in game.players}
               for _ in range(4)]
    found = equilibria_from_starts(ev, starts, np.random.default_rng(1), tol=TOL)
    assert len(found.equilibria) == 2 and len(found.reached_from) == len(starts)
    assert sorted(found.reached_from) != [0] * len(starts)  # not every start ends alike
    assert all(e.concept == PURE_NASH and e.epsilon == 0.0 for e in found.equilibria)
    assert sorted(map(str, pure)) == sorted(str(e.profiles[0]) for e in found.equilibria)
    costs = [e.outcome.cost_eur for e in found.equilibria]
    assert costs == sorted(costs) and costs[0] < costs[1]
    truthful = ev.outcome(ev.bid_map.truthful()).cost_eur
    assert found.price_of_stability == pytest.approx(costs[0] / truthful)
    assert found.price_of_anarchy == pytest.approx(costs[1] / truthful)
    assert found.price_of_anarchy >= found.price_of_stability


def test_support_profiles_enumerate_the_product_of_supports():
    mixed = {"A": {(0, 0): 0.25, (1, 0): 0.75}, "B": {(2, 0): 1.0}, "C": {(0, 0): 0.5, (3, 0): 0.5}}
    profiles, probabilities = support_profiles(mixed)
    assert len(profiles) == 4 and probabilities.sum() == pytest.approx(1.0)
    assert profiles[0] == {"A": (0, 0), "B": (2, 0), "C": (0, 0)}
    assert probabilities[0] == pytest.approx(0.125)
