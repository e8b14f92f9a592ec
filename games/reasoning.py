"""How FSPs reason: the settings of the reasoning processes of :mod:`flexgame.games.dynamics`.

Iterated best response (Gauss-Seidel or Jacobi), k-level reasoning (Stahl & Wilson, Games
Econ. Behav. 10, 1995; Nagel, Am. Econ. Rev. 85, 1995), cognitive hierarchy (Camerer, Ho &
Chong, Q. J. Econ. 119, 2004) and logit quantal response (McKelvey & Palfrey, Games Econ.
Behav. 10, 1995), the strategic behaviour of FSPs studied in ALEXANDER D4.1 (KER 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from flexgame.games.best_response import TIE_RULES
from flexgame.games.payoff import CACHE_PROFILES
from flexgame.games.strategies import StrategyConfig
from flexgame.markets.options import check, option

REASONINGS = ("truthful", "level_k", "cognitive_hierarchy", "ibr", "logit", "equilibrium")
"""Reasoning modes; ``truthful`` bids the true cost (no game is played); ``equilibrium`` runs
iterated best response and, where it does not reach a fixed point, computes a mixed Nash or a
coarse correlated equilibrium (:func:`flexgame.games.equilibria.find_equilibrium`)."""
STRATEGIC = REASONINGS[1:]
EQUILIBRIUM_CLEARINGS = 5000
"""Default budget of clearings of the double oracle, and of regret matching after it, in an
equilibrium search (``max_clearings``)."""
BEST_RESPONDING = ("ibr", "equilibrium")
"""Modes that iterate best responses."""
LEVEL0_RULES = ("truthful", "random", "fixed")
UPDATES = ("gauss_seidel", "jacobi")


def _levels_rule(value) -> str | None:
    bad = [k for k, v in value.items() if not (isinstance(v, int) and v >= 0)]
    return f"needs integer levels >= 0 (FSP {bad[0]!r})" if bad else None


@dataclass
class ReasoningConfig:
    """How FSPs reason.

    Attributes:
        name: truthful, level_k, cognitive_hierarchy, ibr or logit.
        level: reasoning level k of every FSP (level_k, cognitive_hierarchy) unless
            ``levels`` gives one per FSP.
        levels: explicit level per FSP (or player) name.
        level0: level-0 rule, also the start of ibr and logit: truthful, random or fixed
            (``level0_markup_index``).
        level0_markup_index: markup index of the fixed level-0 rule.
        tau: Poisson mean of the cognitive hierarchy.
        samples: opponent samples per expected payoff (cognitive hierarchy, logit).
        update: gauss_seidel or jacobi (ibr, equilibrium).
        max_rounds: iteration cap (ibr, equilibrium) or number of rounds (logit).
        rationality: logit lambda [1/EUR].
        tie_rule: how a best response chooses among equally good strategies (ibr, level_k,
            equilibrium): keep_then_lowest (keep the current one, else the lowest markup),
            lowest, highest.
        tolerance_share: equilibrium: the epsilon a result must reach, as a share of the
            scheme's truthful procurement cost [-] (0.01: no FSP may gain more than 1 % of
            the cost by deviating).
        starts: equilibrium: searches from this many starting profiles (truthful, all at
            the top of the grid, the level-1 profile, then seeded random ones); the distinct
            equilibria found give the price of anarchy (dearest) and of stability
            (cheapest).
        max_profiles: equilibrium: largest restricted game, and largest support whose
            expectations are enumerated exactly (pure profiles).
        cce_rounds: equilibrium: rounds of regret matching of the coarse correlated
            fallback.
        max_clearings: equilibrium: clearings the double oracle may run, and regret
            matching after it (each; None: no budget). Its checks in the full game grow with
            the product of the players' supports, so with many mixing players it would run
            for hours; past the budget the result is a coarse correlated equilibrium
            (:func:`flexgame.games.equilibria.find_equilibrium`), still certified by its
            exact epsilon.
        cache_profiles: outcomes of cleared profiles kept in memory (every strategic
            reasoning; least recently used dropped first, about 1.7 kB each with 302 FSPs):
            a smaller cache re-clears more profiles, so it changes the speed and the number
            of clearings, never a result.
        n_jobs: worker processes that compute payoffs (every strategic reasoning): 1 in
            this process, 0 every core the run may use (its CPU affinity, e.g. a SLURM
            job's cores); changes the speed, never a result.
        strategy: the FSPs' strategy space.
    """

    name: str = option("ibr", choices=REASONINGS)
    level: int = option(2, low=0, only_for=("name", ("level_k", "cognitive_hierarchy")))
    levels: dict[str, int] = option(factory=dict, open_keys=True, rule=_levels_rule,
                                    only_for=("name", ("level_k", "cognitive_hierarchy")))
    level0: str = option("truthful", choices=LEVEL0_RULES, only_for=("name", STRATEGIC))
    level0_markup_index: int = option(0, low=0, only_for=("name", STRATEGIC))
    tau: float = option(1.5, low=0, low_open=True, only_for=("name", ("cognitive_hierarchy",)))
    samples: int = option(20, low=1, only_for=("name", ("cognitive_hierarchy", "logit")))
    update: str = option("gauss_seidel", choices=UPDATES, only_for=("name", BEST_RESPONDING))
    max_rounds: int = option(30, low=1, only_for=("name", ("ibr", "logit", "equilibrium")))
    rationality: float = option(0.5, low=0, only_for=("name", ("logit",)))
    tie_rule: str = option("keep_then_lowest", choices=TIE_RULES,
                           only_for=("name", ("ibr", "level_k", "equilibrium")))
    tolerance_share: float = option(0.01, low=0, low_open=True,
                                    only_for=("name", ("equilibrium",)))
    starts: int = option(1, low=1, only_for=("name", ("equilibrium",)))
    max_profiles: int = option(4096, low=1, only_for=("name", ("equilibrium",)))
    cce_rounds: int = option(500, low=1, only_for=("name", ("equilibrium",)))
    max_clearings: int | None = option(EQUILIBRIUM_CLEARINGS, low=1,
                                       only_for=("name", ("equilibrium",)))
    cache_profiles: int = option(CACHE_PROFILES, low=1, only_for=("name", STRATEGIC))
    n_jobs: int = option(1, low=0, only_for=("name", STRATEGIC))
    strategy: StrategyConfig = option(factory=StrategyConfig, only_for=("name", STRATEGIC))

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self)
