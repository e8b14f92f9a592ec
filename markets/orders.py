"""Orders and shared order books of the continuous distribution flexibility market.

FLEXGRID D5.1 (seed 003) §3.2 "Continuous market matching algorithm": every order has a bus,
a price, a quantity and a direction; there are two Shared Order Books, SOBU for offers "up"
ordered highest price first and SOBD for offers "down" ordered lowest price first, the oldest
offer first among equal prices; an up offer matches a down offer only when its price is >=
the down offer's price. Execution restrictions (same section): IOC (immediate or cancel,
partial executions allowed), FOK (fill or kill: like IOC, no partial execution), AON (all or
nothing: matches only for its full quantity; it rests until it can).

Sign convention (converted here, once): seed 003 calls "up" an *increase of load*, flexgame
(:mod:`flexgame.markets.bids`) calls "up" more injection / *less* net demand. So

* a flexgame **"down"** order (net demand rises by its quantity) is seed 003's offer "up": it
  rests in SOBU and is the **buy** side: it pays its price;
* a flexgame **"up"** order (net demand falls) is seed 003's offer "down": it rests in SOBD
  and is the **sell** side: it receives its price.

A match moves ``q`` MW of net demand from the seller's bus to the buyer's bus (balanced: the
feeder's total draw does not change). Prices are EUR/MWh of a one-hour delivery period, so a
price times a quantity in MW is EUR.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from flexgame.markets.errors import FlexgameInputError, require_choice

RESTRICTIONS = ("none", "IOC", "FOK", "AON")
"""Execution restrictions: none (remainder rests), IOC, FOK, AON (seed 003 §3.2)."""

DIRECTIONS = ("up", "down")
"""flexgame directions: "up" lowers net demand (sell side), "down" raises it (buy side)."""

BUY, SELL = "buy", "sell"

SIDE_OF = {"down": BUY, "up": SELL}
"""Market side of a flexgame direction (see the module docstring)."""


@dataclass(frozen=True)
class Order:
    """One order of the continuous market.

    Attributes:
        order_id: unique id (also the last tie-break of time priority).
        bus: bus number of the feeder it is located at.
        price: limit price [EUR/MWh]: the most a buyer pays, the least a seller accepts.
        quantity_mw: quantity [MW] (> 0) for the one-hour period.
        direction: flexgame direction, "up" (sell) or "down" (buy).
        arrival: arrival time [h from the start of the trading session].
        restriction: "none", "IOC", "FOK" or "AON".
        owner: who submitted it (an FSP name, "" if anonymous).
        tan_phi: reactive change per active change of its activation [MVAr/MW].
        true_value: the owner's true value [EUR/MWh]: a buyer's willingness to pay, a
            seller's marginal cost; None = its price (truthful). Only the surpluses per side
            use it.
    """

    order_id: int
    bus: int
    price: float
    quantity_mw: float
    direction: str
    arrival: float
    restriction: str = "none"
    owner: str = ""
    tan_phi: float = 0.0
    true_value: float | None = None

    def __post_init__(self) -> None:
        require_choice(f"order {self.order_id} direction", self.direction, DIRECTIONS)
        require_choice(f"order {self.order_id} restriction", self.restriction, RESTRICTIONS)
        if not (math.isfinite(self.quantity_mw) and self.quantity_mw > 0):
            raise FlexgameInputError(f"order {self.order_id} has quantity_mw={self.quantity_mw}; "
                                     "it must be finite and > 0")
        for name in ("price", "arrival", "tan_phi"):
            if not math.isfinite(getattr(self, name)):
                raise FlexgameInputError(f"order {self.order_id} has {name}="
                                         f"{getattr(self, name)}; it must be finite")

    @property
    def side(self) -> str:
        return SIDE_OF[self.direction]

    @property
    def value(self) -> float:
        """True value [EUR/MWh] (the price when none is given)."""
        return self.price if self.true_value is None else self.true_value

    def crosses(self, other: Order) -> bool:
        """Seed 003's price condition: the buy price is >= the sell price."""
        buy, sell = (self, other) if self.side == BUY else (other, self)
        return buy.price >= sell.price


@dataclass
class Resting:
    """An order resting in a book with its unmatched quantity [MW]."""

    order: Order
    remaining_mw: float
    seq: int = 0


class OrderBook:
    """One Shared Order Book in price-time priority.

    The buy book (SOBU) ranks the highest price first, the sell book (SOBD) the lowest; then
    the earliest arrival, then the order of insertion.
    """

    def __init__(self, side: str):
        require_choice("book side", side, (BUY, SELL))
        self.side = side
        self._keys: list[tuple] = []
        self._entries: list[Resting] = []
        self._seq = 0

    def __repr__(self) -> str:
        return f"OrderBook({self.side}, {len(self)} orders, {self.volume_mw:.3g} MW)"

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, order: Order, seq: int) -> tuple:
        """Priority key, smaller is better."""
        price = -order.price if self.side == BUY else order.price
        return (price, order.arrival, seq)

    def add(self, order: Order, remaining_mw: float) -> Resting:
        if order.side != self.side:
            raise FlexgameInputError(f"order {order.order_id} is a {order.side} order; it cannot "
                                     f"rest in the {self.side} book")
        entry = Resting(order, remaining_mw, self._seq)
        key = self.key(order, self._seq)
        self._seq += 1
        pos = bisect.bisect(self._keys, key)
        self._keys.insert(pos, key)
        self._entries.insert(pos, entry)
        return entry

    def remove(self, entry: Resting) -> None:
        pos = bisect.bisect_left(self._keys, self.key(entry.order, entry.seq))
        if self._entries[pos] is not entry:
            raise KeyError(f"order {entry.order.order_id} is not in the {self.side} book")
        del self._keys[pos], self._entries[pos]

    def in_priority(self) -> list[Resting]:
        """The resting orders, best first (a snapshot: safe to change the book meanwhile)."""
        return list(self._entries)

    def best(self) -> Resting | None:
        return self._entries[0] if self._entries else None

    def priority_of(self, entry: Resting) -> tuple:
        return self.key(entry.order, entry.seq)

    @property
    def volume_mw(self) -> float:
        return float(sum(e.remaining_mw for e in self._entries))
