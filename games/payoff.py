"""Payoffs of the flexibility-market game (ALEXANDER D4.1, KER 2): the follower (a scheme's
whole clearing pipeline) reacts to the leaders' (FSPs') declared bids; an FSP's payoff is its
settlement payments minus the true cost of what it delivers [EUR]."""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flexgame.games.deviations import DeviationPayoffs
from flexgame.games.strategies import BidMap, Strategy
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.schemes import ClearingResult
from flexgame.markets.settlement import bid_payments

CACHE_PROFILES = 100_000
"""Default bound of a :class:`GameEvaluator`'s profile cache [profiles] (see its docstring
for the memory it takes)."""


@dataclass(frozen=True, slots=True)
class SparseVector:
    """A float vector of ``size`` entries kept by its nonzero ones: their positions
    (ascending) and exact values; every other entry is 0."""

    size: int
    indices: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, dense: np.ndarray) -> SparseVector:
        """The nonzero entries of ``dense`` (float64 values kept exactly)."""
        nonzero = np.flatnonzero(dense)
        return cls(len(dense), nonzero.astype(np.int32), np.asarray(dense, float)[nonzero])

    def dense(self) -> np.ndarray:
        """All ``size`` entries (float64)."""
        out = np.zeros(self.size)
        out[self.indices] = self.values
        return out

    def at(self, i: int) -> float:
        """Entry ``i``."""
        j = int(np.searchsorted(self.indices, i))
        return float(self.values[j]) if j < len(self.indices) and self.indices[j] == i else 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A cleared profile, compact (what the profile cache keeps): procurement cost [EUR],
    unmet need [MW], total payment [EUR], profit per FSP [EUR] (of the FSPs ``fsps``) and
    accepted MW per bid as :class:`SparseVector`, and per market layer (``layers``) its
    procurement cost [EUR] and accepted MW. Read through :attr:`profit`,
    :attr:`activation_mw`, :attr:`layer_cost_eur` and :attr:`layer_accepted_mw`, built on
    demand; the hot loop reads :meth:`profit_of`. Build one with :meth:`of`."""

    cost_eur: float
    unmet_need_mw: float
    payment_eur: float
    fsps: Sequence[str]
    fsp_profit: SparseVector
    accepted: SparseVector
    layers: tuple[str, ...]
    layer_cost: np.ndarray
    layer_accepted: np.ndarray

    @classmethod
    def of(cls, cost_eur: float, profit: np.ndarray, fsps: Sequence[str], unmet_need_mw: float,
           activation_mw: np.ndarray, payment_eur: float, layer_cost_eur: dict[str, float],
           layer_accepted_mw: dict[str, float]) -> Outcome:
        """The compact outcome of cost [EUR], profit per FSP of ``fsps`` [EUR], unmet need
        [MW], accepted MW per bid, payment [EUR], and per layer cost [EUR] and accepted MW
        (dicts with the same layers)."""
        layers = tuple(layer_cost_eur)
        return cls(cost_eur, unmet_need_mw, payment_eur, fsps, SparseVector.of(profit),
                   SparseVector.of(activation_mw), layers,
                   np.array([layer_cost_eur[k] for k in layers], dtype=float),
                   np.array([layer_accepted_mw[k] for k in layers], dtype=float))

    def __repr__(self) -> str:
        return (f"Outcome(cost {self.cost_eur:.2f} EUR, unmet {self.unmet_need_mw:.3g} MW, "
                f"FSP profit {sum(self.profit.values()):.2f} EUR over {len(self.fsps)} FSPs)")

    def profit_of(self, fsp: int) -> float:
        """Profit [EUR] of the FSP at position ``fsp`` of :attr:`fsps`."""
        return self.fsp_profit.at(fsp)

    @property
    def profit(self) -> dict[str, float]:
        """Profit per FSP [EUR], FSPs in the order of :attr:`fsps`."""
        return dict(zip(self.fsps, self.fsp_profit.dense().tolist()))

    @property
    def activation_mw(self) -> np.ndarray:
        """Accepted MW per bid over all layers (a new array)."""
        return self.accepted.dense()

    @property
    def layer_cost_eur(self) -> dict[str, float]:
        """Procurement cost per market layer [EUR]."""
        return dict(zip(self.layers, self.layer_cost.tolist()))

    @property
    def layer_accepted_mw(self) -> dict[str, float]:
        """Accepted MW per market layer."""
        return dict(zip(self.layers, self.layer_accepted.tolist()))


class GameEvaluator:
    """Evaluates strategy profiles by re-clearing a built scheme (no model rebuilds).

    Caches: the compact :class:`Outcome` of the ``cache_profiles`` profiles cleared or asked
    for last (a profile in the cache costs nothing; one dropped from it is cleared again, with
    the same outcome), and the full :class:`~flexgame.markets.schemes.ClearingResult` of the
    ``results_kept`` profiles cleared last and of the ``results_kept`` profiles asked for
    last (:meth:`result`, :meth:`remember`), so that the KPIs of a final profile do not clear
    it again, however many other profiles are cleared in between.

    Args:
        scheme: a built :class:`markets.schemes.Scheme`.
        bid_map: profile -> declared bids.
        settlement: settlement rule name.
        results_kept: full clearing results kept, of each kind (least recently used
            dropped first).
        ranging: read deviation payoffs off LP price ranges where that is exact
            (:mod:`flexgame.games.deviations`; False: clear every deviation). Changes the
            number of clearings, never a result.
        cache_profiles: outcomes kept (least recently used dropped first): changes the
            number of clearings (a dropped profile is cleared again), never a result. About
            1.7 kB per profile with 302 single-resource FSPs (case A, iterated best
            response; ``benchmarks/bench_engine.py``; key and outcome, growing with the
            players, the bids accepted and the FSPs with a profit), against 19.7 kB for a
            profit dict and a dense activation array: the default 100,000 profiles take
            about 170 MB.

    Attributes:
        clearings: clearings run so far (profiles cleared again after leaving the cache
            included).
        deviation_payoffs: the payoffs of a player's strategies against a profile
            (:class:`~flexgame.games.deviations.DeviationPayoffs`).
    """

    def __init__(self, scheme, bid_map: BidMap, settlement: str = "pay_as_bid",
                 results_kept: int = 4, ranging: bool = True,
                 cache_profiles: int = CACHE_PROFILES):
        self.scheme, self.bid_map, self.settlement = scheme, bid_map, settlement
        self._cache: OrderedDict[bytes, Outcome] = OrderedDict()
        self._recent: OrderedDict[bytes, ClearingResult] = OrderedDict()
        self._asked: OrderedDict[bytes, ClearingResult] = OrderedDict()
        self.results_kept, self.cache_profiles = results_kept, cache_profiles
        strategies = bid_map.space.strategies
        self._code = {s: i for i, s in enumerate(strategies)}
        self._code_type = np.min_scalar_type(len(strategies) - 1).char  # an array typecode
        position = {f: i for i, f in enumerate(bid_map.fsps)}
        self._fsp_of_player = {p: position[f] for p, f in bid_map.owner.items()}
        self._position = {p: i for i, p in enumerate(bid_map.players)}
        self.clearings = 0
        self.deviation_payoffs = DeviationPayoffs(self, ranging)

    def __repr__(self) -> str:
        return (f"GameEvaluator({self.scheme.name}, {self.settlement}, "
                f"{len(self.bid_map.players)} players, {self.clearings} clearings, "
                f"{self.cached} profiles cached)")

    @property
    def cached(self) -> int:
        """Profiles whose outcome is cached (at most ``cache_profiles``)."""
        return len(self._cache)

    def key(self, profile: dict[str, Strategy]) -> bytes:
        """Hashable identity of a (complete) profile: the positions of its strategies in the
        strategy space, in player order, packed (1 byte per player for up to 256
        strategies)."""
        code = self._code
        return array(self._code_type, [code[profile[p]] for p in self.bid_map.players]).tobytes()

    def outcome(self, profile: dict[str, Strategy]) -> Outcome:
        """The compact outcome of ``profile`` (cleared unless cached, then cached)."""
        k = self.key(profile)
        hit = self._cache.get(k)
        if hit is not None:
            self._cache.move_to_end(k)
            return hit
        return self._clear(k, profile)[1]

    def result(self, profile: dict[str, Strategy]) -> ClearingResult:
        """The full clearing result of ``profile``: kept if it is among the last profiles
        cleared or asked for, else cleared now; kept as asked for."""
        k = self.key(profile)
        hit = self._asked.get(k) or self._recent.get(k) or self._clear(k, profile)[0]
        _keep(self._asked, k, hit, self.results_kept)
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
        _keep(self._asked, k, result, self.results_kept)
        out = self._cache.get(k) or self._compact(result)
        _keep(self._cache, k, out, self.cache_profiles)
        return out

    def deviation_keys(self, profile: dict[str, Strategy], player: str,
                       strategies) -> list[bytes]:
        """The keys (:meth:`key`) of ``profile`` with ``player`` playing each of
        ``strategies``."""
        codes = array(self._code_type, [self._code[profile[p]] for p in self.bid_map.players])
        at = self._position[player]
        keys = []
        for s in strategies:
            codes[at] = self._code[s]
            keys.append(codes.tobytes())
        return keys

    def cached_payoff(self, k: bytes, player: str) -> float | None:
        """:meth:`payoff` of the profile whose key is ``k`` if its outcome is cached (it
        counts as used), else None."""
        hit = self._cache.get(k)
        if hit is None:
            return None
        self._cache.move_to_end(k)
        return hit.profit_of(self._fsp_of_player[player])

    def clear_ranged(self, profile: dict[str, Strategy]) -> ClearingResult:
        """Clear ``profile`` with its layers' price ranges
        (:attr:`~flexgame.markets.market_layer.LayerOutcome.price_range`); its outcome is
        cached as any other."""
        return self._clear(self.key(profile), profile, ranging=True)[0]

    def _clear(self, k: bytes, profile: dict[str, Strategy],
               ranging: bool = False) -> tuple[ClearingResult, Outcome]:
        result = self.scheme.clear(*self.bid_map.declare(profile), ranging=ranging)
        self.clearings += 1
        _keep(self._recent, k, result, self.results_kept)
        out = self._compact(result)
        _keep(self._cache, k, out, self.cache_profiles)
        return result, out

    def _compact(self, result: ClearingResult) -> Outcome:
        """The outcome of a clearing: payments under the evaluator's rule (arrays,
        :func:`~flexgame.markets.settlement.bid_payments`), profit per FSP = payments minus
        true cost of the accepted MW [EUR]."""
        payment = bid_payments(self.scheme, result, self.settlement)
        margin = payment - self.bid_map.cost * result.activation_mw
        by_fsp = np.bincount(self.bid_map.fsp_of_bid, weights=margin,
                             minlength=len(self.bid_map.fsps))
        return Outcome.of(result.cost_eur, by_fsp, self.bid_map.fsps, result.unmet_need_mw,
                          result.activation_mw, float(payment.sum()),
                          {l.name: l.outcome.cost_eur for l in result.layers},
                          {l.name: float(l.outcome.activation_mw.sum()) for l in result.layers})

    def payoff(self, profile: dict[str, Strategy], player: str) -> float:
        """Profit [EUR] of the FSP that owns ``player`` (the FSP itself when pooled)."""
        return self.outcome(profile).profit_of(self._fsp_of_player[player])


def _keep(kept: OrderedDict, k: bytes, value, bound: int) -> None:
    """Put ``value`` in ``kept`` under ``k`` as its most recently used entry, dropping the
    least recently used entries beyond ``bound``."""
    kept[k] = value
    kept.move_to_end(k)
    while len(kept) > bound:
        kept.popitem(last=False)


def expected_outcome(outcomes: list[Outcome], probabilities: np.ndarray) -> Outcome:
    """The probability-weighted mean of ``outcomes``: cost [EUR], profits [EUR], unmet need
    [MW], accepted MW per bid, payment [EUR], per layer cost [EUR] and accepted MW."""
    w = np.asarray(probabilities, dtype=float) / np.sum(probabilities)

    def mean(values) -> float:
        return float(w @ np.asarray(values, dtype=float))

    first = outcomes[0]
    by_fsp = np.array([o.fsp_profit.dense() for o in outcomes]).T.copy()  # a row per FSP
    costs = [o.layer_cost_eur for o in outcomes]
    accepted = [o.layer_accepted_mw for o in outcomes]
    return Outcome.of(
        cost_eur=mean([o.cost_eur for o in outcomes]),
        profit=np.array([mean(row) for row in by_fsp]),
        fsps=first.fsps,
        unmet_need_mw=mean([o.unmet_need_mw for o in outcomes]),
        activation_mw=w @ np.array([o.activation_mw for o in outcomes]),
        payment_eur=mean([o.payment_eur for o in outcomes]),
        layer_cost_eur={k: mean([c[k] for c in costs]) for k in costs[0]},
        layer_accepted_mw={k: mean([a[k] for a in accepted]) for k in accepted[0]},
    )


def mean_outcome(outcomes: list[Outcome]) -> Outcome:
    """The equally weighted mean of several outcomes (the expectation of a mixed profile
    estimated from sampled pure profiles)."""
    return outcomes[0] if len(outcomes) == 1 else expected_outcome(
        outcomes, np.ones(len(outcomes)))
