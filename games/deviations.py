"""Payoffs of a player's unilateral deviations, with as few clearings as exactness allows.

A best response, a regret or an equilibrium certificate needs the payoff of every strategy of
one player against the others' fixed profile. The plain way clears the scheme once per
strategy. Where the scheme's clearing is decided by its layers' LP solutions alone
(:attr:`flexgame.markets.schemes.Scheme.price_ranging_exact`) and payments are the declared
prices (pay-as-bid), one clearing tells the payoff of many strategies: LP cost ranging gives,
for every bid of every layer, the price interval over which that layer's optimal basis, and
so its solution, stays the same (for bids at a bound of the LP, the nonbasic columns, from
their reduced costs; these hold jointly, so several bids of a pool may move at once). A
strategy that only moves the player's declared prices, each within its interval in every
layer it is offered in, leaves every activation as it was (each layer passes on only its
activations and remaining quantities to the next), so its payoff is its new prices times the
same accepted MW minus true cost, with no clearing (Bradley, Hax & Magnanti, "Applied
Mathematical Programming", 1977, §3.4 and §3.6; the sensitivity analysis of the follower's
LP that bilevel models of strategic bidding rely on, e.g. Ruiz & Conejo, IEEE Trans. Power
Syst. 24(4), 2009). A strategy outside the intervals of every clearing known in the search
is cleared (with ranging) and becomes a reference for the strategies after it; the first
reference is the clearing of the profile itself, shared by every player deviating from it.
The result
equals the plain enumeration bit for bit (tests): payments and margins are summed in the
order a cleared profile's outcome sums them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flexgame.games.parallel import Request, WorkerPool, chunks
from flexgame.games.strategies import Strategy

if TYPE_CHECKING:
    from flexgame.games.payoff import GameEvaluator

REFERENCE_BYTES = 64_000_000
"""Memory for the ranged clearings of whole profiles kept per evaluator [bytes]
(:meth:`DeviationPayoffs.reference`; about 30 kB each with 302 bids in three layers)."""


@dataclass(frozen=True)
class RangedClearing:
    """A clearing known with its layers' price ranges: the declared price [EUR/MW] and
    quantity [MW] per bid it was cleared with, the accepted MW per bid over all layers and
    in each layer, and per market layer the (lower, upper) declared price per bid [EUR/MW]
    between which that layer's solution stays the same."""

    price: np.ndarray
    quantity: np.ndarray
    activation_mw: np.ndarray
    layer_activation_mw: list[np.ndarray]
    ranges: list[tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, result) -> RangedClearing:
        """The ranged clearing of a :class:`~flexgame.markets.results.ClearingResult`
        cleared with ``ranging=True``."""
        return cls(result.declared.price_eur_per_mw, result.declared.quantity_mw,
                   result.activation_mw, [l.outcome.activation_mw for l in result.layers],
                   [l.outcome.price_range for l in result.layers])

    @property
    def nbytes(self) -> int:
        """Memory of its arrays [bytes]."""
        arrays = [self.price, self.quantity, self.activation_mw, *self.layer_activation_mw,
                  *(a for r in self.ranges for a in r)]
        return sum(a.nbytes for a in arrays)

    def covers(self, price: np.ndarray, quantity: np.ndarray, rows: np.ndarray) -> bool:
        """Whether bids declaring ``price`` and ``quantity``, which differ from this
        clearing's at most in bids ``rows``, clear the same: the same quantities, and every
        moved price strictly inside its range in every layer."""
        if not np.array_equal(quantity[rows], self.quantity[rows]):
            return False
        moved = rows[price[rows] != self.price[rows]]
        p = price[moved]
        return all(np.all((lower[moved] < p) & (p < upper[moved])) for lower, upper in self.ranges)

    def profit(self, price: np.ndarray, cost: np.ndarray, rows: np.ndarray) -> float:
        """Pay-as-bid profit [EUR] of the bids ``rows`` (ascending) declaring ``price``
        [EUR/MW] at true cost ``cost`` [EUR/MW] when this clearing's activations hold:
        payments summed over the layers in order, then margins over the bids in order,
        as a cleared profile's outcome sums them (the same floating-point result)."""
        p = price[rows]
        payment = np.zeros(len(rows))
        for layer in self.layer_activation_mw:
            a = layer[rows]
            accepted = a > 0
            payment[accepted] += a[accepted] * p[accepted]
        margin = payment - cost[rows] * self.activation_mw[rows]
        return float(np.bincount(np.zeros(len(rows), dtype=np.intp), weights=margin)[0])


class DeviationPayoffs:
    """The payoffs of a player's strategies against the others' profile, for one
    :class:`GameEvaluator`: cleared one by one, or, where that is exact (see the module
    docstring), read off price ranges of fewer clearings.

    With a :class:`~flexgame.games.parallel.WorkerPool` attached (:attr:`pool`), the
    strategies of one call, and the requests of :meth:`many`, are computed in its worker
    processes, with the same result.

    Args:
        evaluator: the game's evaluator (its cache and clearing count are used).
        ranging: use price ranges where they are exact (False: always clear every
            strategy; the plain enumeration that the ranging one is tested against).

    Attributes:
        exact_ranging: ranges decide the payoffs of this game (pay-as-bid settlement, no
            re-priced forwarded bids, a scheme of plain market layers with bid-order ties).
        read: payoffs read off ranges so far in this process (clearings saved).
        pool: worker processes to compute in, or None (this process).
    """

    def __init__(self, evaluator: GameEvaluator, ranging: bool = True):
        self.evaluator, self.ranging = evaluator, ranging
        space = evaluator.bid_map.space
        self.exact_ranging = (ranging and evaluator.settlement == "pay_as_bid"
                              and not space.reprice_forwarded
                              and evaluator.scheme.price_ranging_exact)
        self.read = 0
        self.pool: WorkerPool | None = None
        self._references: OrderedDict[bytes, RangedClearing] = OrderedDict()
        self._reference_bytes = 0

    def __repr__(self) -> str:
        mode = "price ranging" if self.exact_ranging else "plain enumeration"
        where = f", {self.pool.n_jobs} workers" if self.pool is not None else ""
        return f"DeviationPayoffs({mode}{where}, {self.read} payoffs read off ranges)"

    def __call__(self, profile: dict[str, Strategy], player: str,
                 strategies: Sequence[Strategy] | None = None) -> np.ndarray:
        """Payoff [EUR] of ``player`` (its FSP's profit) for each of ``strategies``
        (default: the whole space, in its order) against ``profile`` (its own entry is
        replaced); in the pool's workers, one contiguous part of the strategies each."""
        strategies = self.evaluator.bid_map.space.strategies if strategies is None else strategies
        if self.pool is None or len(strategies) < 2:
            return self.serial(profile, player, strategies)
        parts = chunks(list(strategies), self.pool.n_jobs)
        out, cleared = self.pool.payoffs([(profile, player, part) for part in parts],
                                         range(len(parts)))
        self.evaluator.clearings += cleared
        return np.concatenate(out)

    def many(self, requests: list[Request]) -> list[np.ndarray]:
        """The payoffs of each ``(profile, player, strategies)`` request (strategies None:
        the whole space), in order; in the pool's workers when there is one (a player's
        requests always in the same worker)."""
        if self.pool is None:
            return [self.serial(*request) for request in requests]
        position = {p: i for i, p in enumerate(self.evaluator.bid_map.players)}
        out, cleared = self.pool.payoffs(list(requests), [position[r[1]] for r in requests])
        self.evaluator.clearings += cleared
        return out

    def reference(self, profile: dict[str, Strategy]) -> RangedClearing:
        """The ranged clearing of ``profile`` (kept, least recently used dropped first,
        within :data:`REFERENCE_BYTES`): every player's deviations from it within its ranges
        are read off it, so the deviations of all players from one profile start from one
        clearing."""
        k = self.evaluator.key(profile)
        hit = self._references.get(k)
        if hit is None:
            hit = self._references[k] = RangedClearing.of(self.evaluator.clear_ranged(profile))
            self._reference_bytes += hit.nbytes
            while self._reference_bytes > REFERENCE_BYTES and len(self._references) > 1:
                self._reference_bytes -= self._references.popitem(last=False)[1].nbytes
        self._references.move_to_end(k)
        return hit

    def serial(self, profile: dict[str, Strategy], player: str,
               strategies: Sequence[Strategy] | None = None) -> np.ndarray:
        """:meth:`__call__` computed in this process."""
        ev = self.evaluator
        strategies = ev.bid_map.space.strategies if strategies is None else strategies
        if not self.exact_ranging:
            return np.array([ev.payoff({**profile, player: s}, player) for s in strategies])
        bm = ev.bid_map
        rows, owned = bm.rows[player], bm.fsp_rows[bm.owner[player]]
        known = [self.reference(profile)] if player in profile else []
        profile = {**profile, player: strategies[0]}  # complete when it lacks the player
        declared = bm.declare(profile)
        payoffs = np.empty(len(strategies))
        for i, (s, k) in enumerate(zip(strategies, ev.deviation_keys(profile, player,
                                                                      strategies))):
            hit = ev.cached_payoff(k, player)
            if hit is not None:
                payoffs[i] = hit
                continue
            price, quantity, _ = bm.deviate(declared, player, s)
            reference = next((r for r in known if r.covers(price, quantity, rows)), None)
            if reference is not None:
                payoffs[i] = reference.profit(price, bm.cost, owned)
                self.read += 1
                continue
            trial = {**profile, player: s}
            known.append(RangedClearing.of(ev.clear_ranged(trial)))
            payoffs[i] = ev.payoff(trial, player)
        return payoffs
