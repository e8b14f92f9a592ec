"""Welfare-maximising network-constrained double auction of continuous-market orders.

The benchmark of the continuous market (seed 003 §3.2 "Related work": an auction may clear
more efficiently than a continuous double auction): the same orders cleared at once by the LP

    max  sum_{buy b} p_b x_b - sum_{sell s} p_s x_s                       [EUR]
    s.t. sum_b x_b = sum_s x_s                                             (balance, MW)
         G x <= u                                                          (feeder limits)
         0 <= x_o <= q_o

with G the LinDistFlow sensitivities of :class:`flexgame.markets.feeder_limits.FeederLimits`
and u its base headroom ("strict") or the headroom's positive part ("no_worsening"). Orders are
divisible in the LP (FOK/AON relaxed, IOC irrelevant), so its optimum bounds the welfare of
*any* sequence of continuous matches of the same orders: every confirmed continuous match is
balanced and keeps the rows within u (see :mod:`flexgame.markets.feeder_limits`), so the
continuous market's final activations are feasible here. Hence auction welfare >= continuous
welfare on every arrival order.

The LP is built once for a list of order slots (bus, direction, tan_phi) and re-solved with new
prices and quantities (:meth:`WelfareAuction.clear`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.feeder_limits import FeederLimits
from flexgame.markets.lp import CompiledLP
from flexgame.markets.orders import BUY, Order


@dataclass(frozen=True)
class AuctionResult:
    """Accepted quantity per order slot [MW] and the welfare at declared prices [EUR]."""

    accepted_mw: np.ndarray
    welfare_eur: float

    @property
    def volume_mw(self) -> float:
        """Matched volume (the buy side's accepted quantity, = the sell side's) [MW]."""
        return float(self.accepted_mw.sum() / 2.0)


class WelfareAuction:
    """The auction LP over fixed order slots.

    Args:
        limits: the feeder's limit rows (same as the continuous market's).
        slots: orders fixing each column's bus, direction and tan_phi; their prices and
            quantities are only defaults for :meth:`clear`.
        network: False drops the feeder limits (a copper-plate reference: what the limits
            cost the auction).
    """

    def __init__(self, limits: FeederLimits, slots: list[Order], network: bool = True):
        if not slots:
            raise FlexgameInputError("a welfare auction needs at least one order slot")
        self.limits, self.slots, self.network = limits, list(slots), network
        self.is_buy = np.array([o.side == BUY for o in slots])
        balance = np.where(self.is_buy, 1.0, -1.0)[None, :]
        if network:
            g = np.column_stack([limits.column(o) for o in slots])
            upper = limits.auction_upper()
        else:
            g, upper = np.zeros((0, len(slots))), np.zeros(0)
        a = sp.vstack([sp.csr_matrix(balance), sp.csr_matrix(g)])
        n = len(slots)
        self.lp = CompiledLP.from_arrays(np.zeros(n), a, np.r_[0.0, np.full(len(upper), -np.inf)],
                                         np.r_[0.0, upper], np.zeros(n), np.zeros(n))
        self._cols = np.arange(n)

    def __repr__(self) -> str:
        return (f"WelfareAuction({self.limits.feeder.name!r}, {len(self.slots)} order slots, "
                f"{self.limits.mode if self.network else 'no network limits'}, {self.lp!r})")

    def clear(self, price: np.ndarray | None = None,
              quantity_mw: np.ndarray | None = None) -> AuctionResult:
        """Clear with ``price`` [EUR/MWh] and ``quantity_mw`` [MW] per slot (default: the
        slots' own).

        Raises:
            SolverError: HiGHS found no optimum.
        """
        if price is None:
            price = np.array([o.price for o in self.slots])
        price = np.asarray(price, float)
        quantity = (np.array([o.quantity_mw for o in self.slots]) if quantity_mw is None
                    else np.asarray(quantity_mw, float))
        if price.shape != (len(self.slots),) or quantity.shape != (len(self.slots),):
            raise FlexgameInputError(f"auction prices and quantities need {len(self.slots)} "
                                     f"entries, got {price.shape} and {quantity.shape}")
        self.lp.set_costs(self._cols, np.where(self.is_buy, -price, price))
        self.lp.set_col_bounds(self._cols, 0.0, quantity)
        sol = self.lp.solve().require_optimal(
            f"welfare auction of {len(self.slots)} orders on feeder {self.limits.feeder.name!r}")
        x = np.clip(sol.x, 0.0, quantity)
        return AuctionResult(x, float(-sol.objective))

    def clear_orders(self, orders: list[Order]) -> AuctionResult:
        """Clear ``orders`` (one per slot, same bus, direction and tan_phi)."""
        if len(orders) != len(self.slots) or any(
                (o.bus, o.direction, o.tan_phi) != (s.bus, s.direction, s.tan_phi)
                for o, s in zip(orders, self.slots)):
            raise FlexgameInputError("orders must match the auction's slots one to one (same "
                                     "bus, direction and tan_phi, in slot order)")
        return self.clear(np.array([o.price for o in orders]),
                          np.array([o.quantity_mw for o in orders]))
