"""Payoffs of the flexibility-market game (ALEXANDER D4.1, KER 2): the follower (a scheme's
whole clearing pipeline) reacts to the leaders' (FSPs') declared bids; an FSP's payoff is its
settlement payments minus the true cost of what it delivers [EUR]."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from flexgame.games.strategies import BidMap, Strategy
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.schemes import ClearingResult
from flexgame.markets.settlement import settle


@dataclass(frozen=True)
class Outcome:
    """A cleared profile: procurement cost [EUR], profit per FSP [EUR], unmet need [MW],
    accepted MW per bid, total payment [EUR], and per market layer its procurement cost
    [EUR] and accepted MW."""

    cost_eur: float
    profit: dict[str, float]
    unmet_need_mw: float
    activation_mw: np.ndarray
    payment_eur: float
    layer_cost_eur: dict[str, float]
    layer_accepted_mw: dict[str, float]

    def __repr__(self) -> str:
        return (f"Outcome(cost {self.cost_eur:.2f} EUR, unmet {self.unmet_need_mw:.3g} MW, "
                f"FSP profit {sum(self.profit.values()):.2f} EUR over {len(self.profit)} FSPs)")


class GameEvaluator:
    """Evaluates strategy profiles by re-clearing a built scheme (no model rebuilds).

    Caches: the compact :class:`Outcome` of every profile cleared (a profile seen before
    costs nothing), and the full :class:`~flexgame.markets.schemes.ClearingResult` of the
    ``results_kept`` profiles cleared last and of the ``results_kept`` profiles asked for
    last (:meth:`result`, :meth:`remember`), so that the KPIs of a final profile do not clear
    it again, however many other profiles are cleared in between.

    Args:
        scheme: a built :class:`markets.schemes.Scheme`.
        bid_map: profile -> declared bids.
        settlement: settlement rule name.
        results_kept: full clearing results kept, of each kind (least recently used
            dropped first).

    Attributes:
        clearings: clearings run so far.
    """

    def __init__(self, scheme, bid_map: BidMap, settlement: str = "pay_as_bid",
                 results_kept: int = 4):
        self.scheme, self.bid_map, self.settlement = scheme, bid_map, settlement
        self._cache: dict[tuple, Outcome] = {}
        self._recent: OrderedDict[tuple, ClearingResult] = OrderedDict()
        self._asked: OrderedDict[tuple, ClearingResult] = OrderedDict()
        self.results_kept = results_kept
        self.clearings = 0

    def __repr__(self) -> str:
        return (f"GameEvaluator({self.scheme.name}, {self.settlement}, "
                f"{len(self.bid_map.players)} players, {self.clearings} clearings, "
                f"{len(self._cache)} profiles cached)")

    def key(self, profile: dict[str, Strategy]) -> tuple:
        """Hashable identity of a (complete) profile: the strategies in player order."""
        return tuple(profile[p] for p in self.bid_map.players)

    def outcome(self, profile: dict[str, Strategy]) -> Outcome:
        """The compact outcome of ``profile`` (cleared once, then cached)."""
        k = self.key(profile)
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        return self._clear(k, profile)[1]

    def result(self, profile: dict[str, Strategy]) -> ClearingResult:
        """The full clearing result of ``profile``: kept if it is among the last profiles
        cleared or asked for, else cleared now; kept as asked for."""
        k = self.key(profile)
        hit = self._asked.get(k) or self._recent.get(k) or self._clear(k, profile)[0]
        self._keep(self._asked, k, hit)
        return hit

    def remember(self, profile: dict[str, Strategy], result: ClearingResult) -> Outcome:
        """Take ``result``, a clearing of ``profile``'s declared bids that the caller already
        has, as that profile's clearing (no clearing is run); returns its outcome (the cached
        one if the profile was cleared before). Raises :class:`FlexgameInputError` if the
        result was cleared with other bids (no forwarded price counts as forwarded bids
        keeping their price)."""
        price, quantity, forward = self.bid_map.declare(profile)
        got = result.declared
        got_forward = got.forward_price_eur_per_mw
        if not (np.array_equal(got.price_eur_per_mw, price)
                and np.array_equal(got.quantity_mw, quantity)
                and np.array_equal(got.price_eur_per_mw if got_forward is None else got_forward,
                                   price if forward is None else forward)):
            raise FlexgameInputError("the clearing result to remember was cleared with other "
                                     "bids than the profile declares")
        k = self.key(profile)
        self._keep(self._asked, k, result)
        out = self._cache.get(k)
        if out is None:
            out = self._cache[k] = self._compact(result)
        return out

    def _clear(self, k: tuple, profile: dict[str, Strategy]) -> tuple[ClearingResult, Outcome]:
        result = self.scheme.clear(*self.bid_map.declare(profile))
        self.clearings += 1
        self._keep(self._recent, k, result)
        out = self._cache[k] = self._compact(result)
        return result, out

    def _keep(self, kept: OrderedDict, k: tuple, result: ClearingResult) -> None:
        kept[k] = result
        kept.move_to_end(k)
        if len(kept) > self.results_kept:
            kept.popitem(last=False)

    def _compact(self, result: ClearingResult) -> Outcome:
        if self.settlement == "pay_as_bid":  # payments are the declared prices: no tables needed
            payment = result.declared_cost_by_bid()
        else:
            payment = settle(self.scheme, result, self.settlement).bid_payment_eur
        margin = payment - self.bid_map.cost * result.activation_mw
        by_fsp = np.bincount(self.bid_map.fsp_of_bid, weights=margin,
                             minlength=len(self.bid_map.fsps))
        profit = dict(zip(self.bid_map.fsps, by_fsp.tolist()))
        return Outcome(result.cost_eur, profit, result.unmet_need_mw, result.activation_mw,
                       float(payment.sum()),
                       {l.name: l.outcome.cost_eur for l in result.layers},
                       {l.name: float(l.outcome.activation_mw.sum()) for l in result.layers})

    def payoff(self, profile: dict[str, Strategy], player: str) -> float:
        """Profit [EUR] of the FSP that owns ``player`` (the FSP itself when pooled)."""
        return self.outcome(profile).profit[self.bid_map.owner[player]]


def expected_outcome(outcomes: list[Outcome], probabilities: np.ndarray) -> Outcome:
    """The probability-weighted mean of ``outcomes``: cost [EUR], profits [EUR], unmet need
    [MW], accepted MW per bid, payment [EUR], per layer cost [EUR] and accepted MW."""
    w = np.asarray(probabilities, dtype=float) / np.sum(probabilities)

    def mean(values) -> float:
        return float(w @ np.asarray(values, dtype=float))

    first = outcomes[0]
    return Outcome(
        cost_eur=mean([o.cost_eur for o in outcomes]),
        profit={f: mean([o.profit[f] for o in outcomes]) for f in first.profit},
        unmet_need_mw=mean([o.unmet_need_mw for o in outcomes]),
        activation_mw=w @ np.array([o.activation_mw for o in outcomes]),
        payment_eur=mean([o.payment_eur for o in outcomes]),
        layer_cost_eur={k: mean([o.layer_cost_eur[k] for o in outcomes])
                        for k in first.layer_cost_eur},
        layer_accepted_mw={k: mean([o.layer_accepted_mw[k] for o in outcomes])
                           for k in first.layer_accepted_mw},
    )


def mean_outcome(outcomes: list[Outcome]) -> Outcome:
    """The equally weighted mean of several outcomes (the expectation of a mixed profile
    estimated from sampled pure profiles)."""
    return outcomes[0] if len(outcomes) == 1 else expected_outcome(
        outcomes, np.ones(len(outcomes)))
