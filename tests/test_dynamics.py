"""The reasoning processes of :mod:`flexgame.games.dynamics` as pure functions, on textbook
games given by their best-response rules (no market): they know only the callables they are
given. The market games are in ``test_strategic.py``, run through the Mesa model."""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.games.dynamics import (RUNNING, cognitive_hierarchy, iterated_best_response,
                                     level_k, logit_dynamics, play)

# payoffs[(row, column)] = (row player's, column player's)
PRISONERS = {("C", "C"): (3, 3), ("C", "D"): (0, 5), ("D", "C"): (5, 0), ("D", "D"): (1, 1)}
PENNIES = {("H", "H"): (1, -1), ("H", "T"): (-1, 1), ("T", "H"): (-1, 1), ("T", "T"): (1, -1)}


def responder(payoffs):
    """Best response of player "r" (row) or "c" (column) in a 2-player bimatrix game."""
    strategies = sorted({row for row, _ in payoffs})

    def respond(player, profile):
        if player == "r":
            return max(strategies, key=lambda s: payoffs[s, profile["c"]][0])
        return max(strategies, key=lambda s: payoffs[profile["r"], s][1])
    return respond


def test_ibr_reaches_the_dominant_strategy_equilibrium():
    """Prisoner's dilemma from mutual cooperation: both defect after one round, the next
    round changes nothing: a fixed point at round 2."""
    start = {"r": "C", "c": "C"}
    for update in ("gauss_seidel", "jacobi"):
        result = play(iterated_best_response(responder(PRISONERS), start, ["r", "c"], update),
                      start)
        assert result.status == "converged" and result.rounds == 2
        assert result.profile == {"r": "D", "c": "D"} and result.history[0] == start


def test_ibr_reports_the_cycle_of_matching_pennies():
    """Matching pennies has no pure equilibrium. Gauss-Seidel from (H, H): (H, T), (T, H),
    (H, T) again: a 2-profile cycle found at round 3. Jacobi: (H, T), (T, T), (T, H), (H, H)
    again: the 4-profile cycle through all profiles, found at round 4."""
    start = {"r": "H", "c": "H"}
    rounds = list(iterated_best_response(responder(PENNIES), start, ["r", "c"]))
    assert [r.status for r in rounds] == [RUNNING, RUNNING, "cycle"]
    assert rounds[-1].cycle == [{"r": "H", "c": "T"}, {"r": "T", "c": "H"}]
    result = play(iterated_best_response(responder(PENNIES), start, ["r", "c"], "jacobi"), start)
    assert result.status == "cycle" and result.rounds == 4
    assert result.cycle == [start, {"r": "H", "c": "T"}, {"r": "T", "c": "T"},
                            {"r": "T", "c": "H"}]
    assert result.profile == result.cycle[0]


def test_ibr_stops_at_the_cap():
    start = {"r": "H", "c": "H"}
    result = play(iterated_best_response(responder(PENNIES), start, ["r", "c"], max_rounds=2),
                  start)
    assert result.status == "capped" and result.rounds == 2 and result.cycle == []


def beauty_contest(p: float = 2 / 3):
    """Nagel's (1995) p-beauty contest: a player's best response is p x the others' mean."""
    def respond(player, profile):
        others = [v for q, v in profile.items() if q != player]
        return round(p * sum(others) / len(others))
    return respond


def test_level_k_in_the_beauty_contest():
    """Level 0 guesses 50, level 1 two thirds of it (33), level 2 two thirds of that (22); each
    player stops at its own level, the process at the highest one."""
    level0 = {"a": 50, "b": 50, "c": 50}
    rounds = list(level_k(beauty_contest(), level0, {"a": 0, "b": 1, "c": 2}))
    assert [r.profile for r in rounds] == [{"a": 50, "b": 33, "c": 33},
                                           {"a": 50, "b": 33, "c": 22}]
    assert [r.status for r in rounds] == [RUNNING, "level_k"]
    assert len(list(level_k(beauty_contest(), level0, {"a": 0, "b": 0, "c": 0}))) == 1


def test_cognitive_hierarchy_draws_levels_from_the_truncated_poisson():
    """Level-0 plays 0, level 1 plays 1 (it responds with 1 whatever it believes). A level-2
    player's opponents are of level 1 with probability tau / (1 + tau) (Poisson(tau)
    truncated to levels 0 and 1); the share of level-1 plays in its sampled beliefs matches
    within 4 standard errors. The same seed draws the same beliefs."""
    tau, samples = 1.5, 2000
    seen = []

    def respond(player, beliefs):
        seen.append(beliefs)
        return 1, 0.0

    def run(seed):
        seen.clear()
        rounds = list(cognitive_hierarchy(respond, {"a": 0, "b": 0, "c": 0},
                                          {"a": 2, "b": 2, "c": 1}, tau, samples,
                                          np.random.default_rng(seed)))
        return rounds, [list(b) for b in seen]

    rounds, beliefs = run(0)
    assert [r.status for r in rounds] == [RUNNING, "cognitive_hierarchy"]
    assert set(rounds[-1].sampling_error) == {"a", "b", "c"}
    assert all(b[0] == {"a": 0, "b": 0, "c": 0} for b in beliefs[:3])  # round 1: all level 0
    share = np.mean([d["b"] for d in beliefs[3]])
    expected = tau / (1 + tau)
    assert share == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / samples))
    assert run(0)[1] == beliefs


def test_logit_dynamics_between_uniform_and_best_response():
    """Prisoner's dilemma against a point mass on cooperation: lambda = 0 mixes uniformly;
    a large lambda puts (almost) all the mass on defection, the dominant strategy. Opponents
    are sampled, so each round carries its sample and standard errors."""
    strategies = ["C", "D"]

    def payoffs(player, profiles):
        i = 0 if player == "r" else 1
        other = "c" if player == "r" else "r"
        return np.array([[PRISONERS[(s, d[other]) if i == 0 else (d[other], s)][i]
                          for s in strategies] for d in profiles], dtype=float)

    start = {"r": "C", "c": "C"}
    (uniform,) = logit_dynamics(payoffs, start, strategies, 0.0, 5, 1, np.random.default_rng(0))
    assert uniform.status == "logit"
    assert all(m == pytest.approx([0.5, 0.5]) for m in uniform.mixed.values())
    rounds = list(logit_dynamics(payoffs, start, strategies, 20.0, 5, 3,
                                 np.random.default_rng(0)))
    assert [r.status for r in rounds] == [RUNNING, RUNNING, "logit"]
    assert all(r.profile == {"r": "D", "c": "D"} for r in rounds)
    assert all(m[1] > 0.999 for m in rounds[-1].mixed.values())
    assert len(rounds[-1].sample) == 5 and set(rounds[-1].sampling_error) == {"r", "c"}


def test_rounds_print_as_one_short_line():
    start = {"r": "H", "c": "H"}
    rounds = list(iterated_best_response(responder(PENNIES), start, ["r", "c"], "jacobi"))
    assert repr(rounds[-1]) == "Round(4, cycle, 4-profile cycle)"
    assert repr(play(iter(rounds), start)) == "DynamicsResult(cycle after 4 rounds, 4-profile cycle)"
