"""Reasoning dynamics of the FSPs' game (the strategic behaviour studied in ALEXANDER D4.1,
KER 2), one pure function per process.

Each process is a generator that yields a :class:`Round` after every round of reasoning and
asks each player for its move through a callable (``respond(player, profile)`` and the like):
it knows nothing of markets. :class:`flexgame.agents.model.FlexMarketModel` wires the callables
to its FSP agents (which re-clear the scheme, :mod:`flexgame.games.best_response`) and takes
one round per Mesa step; :func:`play` runs a process to its end without agents.

* Iterated best response (IBR; Cournot adjustment, see Fudenberg & Levine, *The Theory of
  Learning in Games*, MIT Press 1998, ch. 1): Gauss-Seidel (players update one after the
  other in a given order, each seeing the earlier updates) or Jacobi (all respond to the
  previous round). It stops at a fixed point (a pure Nash equilibrium of the discrete game),
  at a cycle (a profile seen before) or at the cap.
* k-level reasoning (Stahl & Wilson, Games Econ. Behav. 10, 1995; Nagel, Am. Econ. Rev. 85,
  1995): level 0 plays a rule (truthful, random or a fixed markup); a level-k player
  best-responds to everyone playing level k-1.
* Cognitive hierarchy (Camerer, Ho & Chong, Q. J. Econ. 119, 2004): a level-k player believes
  the others are of levels 0..k-1 with Poisson(tau) weights normalised over 0..k-1; its
  expected payoff is estimated over seeded draws of the opponents' levels, with its standard
  error.
* Logit quantal response (McKelvey & Palfrey, Games Econ. Behav. 10, 1995): each player's
  mixed strategy puts probability proportional to exp(lambda x expected payoff) on each
  strategy, a noisy best response; expected payoffs against mixed opponents come from seeded
  samples, with their standard error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count

import numpy as np
from scipy.stats import poisson

from flexgame.games.strategies import Strategy

Profile = dict[str, Strategy]

Respond = Callable[[str, Profile], Strategy]
"""``respond(player, profile)``: the player's best response to ``profile`` (its own entry is
its current strategy)."""

RespondToSample = Callable[[str, list[Profile]], tuple[Strategy, float]]
"""``respond(player, beliefs)``: the player's best response to opponent profiles drawn from its
belief, and the standard error of its expected payoff [EUR]."""

PayoffsAgainst = Callable[[str, list[Profile]], np.ndarray]
"""``payoffs(player, profiles)``: the player's payoff [EUR] for each of its strategies
(columns) against each profile (rows)."""

RUNNING = "running"


@dataclass(frozen=True)
class Round:
    """The state after one round of a reasoning process.

    Attributes:
        number: 1, 2, ...
        profile: the pure profile played (logit: every player's most likely strategy).
        status: ``"running"``, or on the last round how the process ended: "converged",
            "cycle" or "capped" (IBR), "level_k", "cognitive_hierarchy" or "logit".
        cycle: IBR ending in a cycle: its profiles in order, from the first visit of the
            repeated profile (empty otherwise).
        sampling_error: standard error of sampled expected payoffs per player [EUR]
            (cognitive hierarchy: of the chosen strategy of the players whose level is
            reached; logit: the largest over the player's strategies).
        mixed: logit: every player's mixed strategy (probability per strategy), else None.
        sample: logit: pure profiles drawn from the mixed profile, whose mean outcome is the
            round's outcome (empty otherwise).
    """

    number: int
    profile: Profile
    status: str = RUNNING
    cycle: list[Profile] = field(default_factory=list)
    sampling_error: dict[str, float] = field(default_factory=dict)
    mixed: dict[str, np.ndarray] | None = None
    sample: list[Profile] = field(default_factory=list)

    def __repr__(self) -> str:
        cycle = f", {len(self.cycle)}-profile cycle" if self.cycle else ""
        mixed = ", mixed" if self.mixed is not None else ""
        return f"Round({self.number}, {self.status}{cycle}{mixed})"


@dataclass
class DynamicsResult:
    """Outcome of a reasoning process run to its end (see :func:`play`).

    Attributes:
        status: how it ended (see :attr:`Round.status`).
        profile: final profile.
        history: profile after every round (round 0 = the start).
        cycle: the profiles of a detected cycle, in order (empty otherwise).
        sampling_error: standard error of sampled expected payoffs per player [EUR] (mixed
            beliefs only).
    """

    status: str
    profile: Profile
    history: list[Profile]
    cycle: list[Profile] = field(default_factory=list)
    sampling_error: dict[str, float] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return len(self.history) - 1

    def __repr__(self) -> str:
        cycle = f", {len(self.cycle)}-profile cycle" if self.cycle else ""
        return f"DynamicsResult({self.status} after {self.rounds} rounds{cycle})"


def play(rounds: Iterator[Round], start: Profile) -> DynamicsResult:
    """Run a reasoning process (one of the generators below, started at ``start``) to its
    end (a process without rounds, IBR capped at 0, ends "capped" at ``start``)."""
    history, last = [dict(start)], Round(0, dict(start), "capped")
    for last in rounds:
        history.append(last.profile)
    return DynamicsResult(last.status, last.profile, history, last.cycle, last.sampling_error)


def iterated_best_response(respond: Respond, start: Profile, order: list[str],
                           update: str = "gauss_seidel",
                           max_rounds: int = 50) -> Iterator[Round]:
    """Iterated best response from ``start``: each round every player in ``order`` replaces
    its strategy by ``respond(player, basis)``, the basis being the profile with the earlier
    players' updates (``update="gauss_seidel"``) or the previous round's profile
    (``"jacobi"``).

    Ends at a fixed point ("converged": no player moves), at a cycle ("cycle": a profile seen
    in an earlier round; :attr:`Round.cycle` holds the profiles from that round up to the one
    before the repeat), or after ``max_rounds`` ("capped").
    """
    players = list(start)
    history = [dict(start)]
    seen = {tuple(start[p] for p in players): 0}
    for r in range(1, max_rounds + 1):
        before = history[-1]
        profile = dict(before)
        for p in order:
            basis = profile if update == "gauss_seidel" else before
            profile[p] = respond(p, {**basis, p: before[p]})
        history.append(profile)
        key = tuple(profile[p] for p in players)
        if profile == before:
            yield Round(r, profile, "converged")
            return
        if key in seen:
            yield Round(r, profile, "cycle", cycle=history[seen[key]:-1])
            return
        seen[key] = r
        yield Round(r, profile, "capped" if r == max_rounds else RUNNING)


def _adopted(plays: list[Profile], levels: dict[str, int], k: int) -> Profile:
    """The profile once level k is known: every player plays its own level, capped at k."""
    return {p: plays[min(levels[p], k)][p] for p in plays[0]}


def level_k(respond: Respond, level0: Profile, levels: dict[str, int]) -> Iterator[Round]:
    """k-level reasoning (Stahl & Wilson 1995; Nagel 1995): round k computes what a level-k
    player plays, every player's best response to all playing level k-1 (``level0`` at
    k = 1); players of level >= k adopt it. Ends once the highest of ``levels`` (one per
    player) is reached, after at least one round."""
    plays = [dict(level0)]
    top = max(levels.values())
    for k in count(1):
        plays.append({p: respond(p, plays[k - 1]) for p in plays[k - 1]})
        done = k >= top
        yield Round(k, _adopted(plays, levels, k), "level_k" if done else RUNNING)
        if done:
            return


def cognitive_hierarchy(respond: RespondToSample, level0: Profile, levels: dict[str, int],
                        tau: float, samples: int,
                        rng: np.random.Generator) -> Iterator[Round]:
    """Cognitive hierarchy (Camerer, Ho & Chong 2004): round k computes what a level-k player
    plays, its best response to opponents whose levels are drawn from Poisson(``tau``)
    truncated to 0..k-1 (``samples`` seeded draws of every player's level, shared by all
    players of the round); players of level >= k adopt it. Ends once the highest of
    ``levels`` is reached, after at least one round."""
    plays = [dict(level0)]
    names = sorted(level0)
    top = max(levels.values())
    errors: dict[str, float] = {}
    for k in count(1):
        weights = poisson.pmf(np.arange(k), tau)
        weights = weights / weights.sum()
        draws = [rng.choice(k, size=len(names), p=weights) for _ in range(samples)]
        beliefs = [{g: plays[d[j]][g] for j, g in enumerate(names)} for d in draws]
        play_k = {}
        for p in names:
            play_k[p], error = respond(p, beliefs)
            if levels[p] == k:
                errors[p] = error
        plays.append(play_k)
        done = k >= top
        yield Round(k, _adopted(plays, levels, k), "cognitive_hierarchy" if done else RUNNING,
                    sampling_error=dict(errors))
        if done:
            return


@dataclass(frozen=True)
class LogitRound:
    """One round of logit responses.

    Attributes:
        mixed: each player's new mixed strategy (probabilities over the strategy list).
        expected_payoff: per player, the sampled expected payoff of each strategy [EUR].
        standard_error: per player, the largest standard error of those estimates [EUR].
        regret: per player, best expected payoff minus the expected payoff of the mixed
            strategy it played this round [EUR] (its epsilon, estimated by sampling).
        draws: the sampled opponent profiles (pure), whose average is the round's outcome.
    """

    mixed: dict[str, np.ndarray]
    expected_payoff: dict[str, np.ndarray]
    standard_error: dict[str, float]
    regret: dict[str, float]
    draws: list[Profile]

    def __repr__(self) -> str:
        return (f"LogitRound({len(self.mixed)} players, {len(self.draws)} draws, largest regret "
                f"{max(self.regret.values(), default=0.0):.3g} EUR)")


def sample_profiles(strategies: list[Strategy], mixed: dict[str, np.ndarray], samples: int,
                    rng: np.random.Generator) -> list[Profile]:
    """``samples`` pure profiles drawn from independent mixed strategies (seeded)."""
    players = sorted(mixed)
    picks = {p: rng.choice(len(strategies), size=samples, p=mixed[p]) for p in players}
    return [{p: strategies[int(picks[p][n])] for p in players} for n in range(samples)]


def logit_response(payoffs: PayoffsAgainst, mixed: dict[str, np.ndarray],
                   strategies: list[Strategy], rationality: float, samples: int,
                   rng: np.random.Generator) -> LogitRound:
    """Logit quantal response (McKelvey & Palfrey 1995): every player's new mixed strategy is
    p(s) ~ exp(lambda u(s)), with u(s) its expected payoff of strategy s against the others'
    current mixed strategies ``mixed`` (simultaneous update; a fixed point is a logit quantal
    response equilibrium). Expectations are estimated over ``samples`` seeded profile draws,
    the same draws for every strategy of a player (common random numbers)."""
    draws = sample_profiles(strategies, mixed, samples, rng)
    new, expected, errors, regret = {}, {}, {}, {}
    for f in sorted(mixed):
        values = payoffs(f, draws)
        mean = values.mean(axis=0)
        z = rationality * (mean - mean.max())
        new[f] = np.exp(z) / np.exp(z).sum()
        expected[f] = mean
        errors[f] = float(values.std(axis=0, ddof=1).max() / np.sqrt(samples)) if samples > 1 else 0.0
        regret[f] = float(max(mean.max() - mixed[f] @ mean, 0.0))
    return LogitRound(new, expected, errors, regret, draws)


def logit_dynamics(payoffs: PayoffsAgainst, start: Profile, strategies: list[Strategy],
                   rationality: float, samples: int, rounds: int,
                   rng: np.random.Generator) -> Iterator[Round]:
    """``rounds`` rounds of logit responses (:func:`logit_response`) from a point mass on
    ``start``; each round's outcome is represented by ``samples`` profiles drawn from the new
    mixed profile (:attr:`Round.sample`)."""
    index = {s: i for i, s in enumerate(strategies)}
    mixed = {p: np.eye(len(index))[index[s]] for p, s in start.items()}
    for r in range(1, rounds + 1):
        step = logit_response(payoffs, mixed, strategies, rationality, samples, rng)
        mixed = step.mixed
        sample = sample_profiles(strategies, mixed, samples, rng)
        profile = {p: strategies[int(np.argmax(mixed[p]))] for p in start}
        yield Round(r, profile, "logit" if r == rounds else RUNNING,
                    sampling_error=step.standard_error, mixed=mixed, sample=sample)
