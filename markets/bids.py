"""Flexibility resources, their bids, and their owners (FSPs).

A resource sits at a bus, offers upward flexibility (more injection / less consumption) or
downward flexibility (less injection / more consumption) up to ``quantity_mw``, at a true
marginal cost ``cost_eur_per_mw``; it belongs to one FSP. Each resource submits one divisible
bid; ``price_eur_per_mw`` starts at the true cost (truthful bidding) and is what strategies
change. Prices follow the D3.3 cases (ALEXANDER D3.3 §4.2):

* A: upward TSO need; down bids 10-25 EUR/MW, up bids 30-55 EUR/MW, distribution bids dearer
  than transmission bids (each range is split: transmission in the lower part).
* B: as A, but transmission up bids 90-165 EUR/MW.
* C: B plus extra up and down distribution bids at critical (congested) nodes; the extra up
  bids are dearer than transmission up bids.
* D: downward TSO need, prices as in A.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.options import check, option, pair_rule

if TYPE_CHECKING:  # only for annotations: the grid state uses the bids' signs
    from flexgame.markets.system import InterconnectedSystem

CASES = ("A", "B", "C", "D")
AGGREGATIONS = ("none", "by_feeder", "random_pools")

PriceRange = tuple[float, float]

DEFAULT_PRICES: dict[str, dict[str, PriceRange]] = {
    "A": {"transmission_up": (30.0, 42.5), "distribution_up": (42.5, 55.0),
          "transmission_down": (10.0, 17.5), "distribution_down": (17.5, 25.0)},
    "B": {"transmission_up": (90.0, 165.0), "distribution_up": (42.5, 55.0),
          "transmission_down": (10.0, 17.5), "distribution_down": (17.5, 25.0)},
    "C": {"transmission_up": (90.0, 165.0), "distribution_up": (42.5, 55.0),
          "transmission_down": (10.0, 17.5), "distribution_down": (17.5, 25.0),
          "critical_up": (170.0, 200.0), "critical_down": (17.5, 25.0)},
    "D": {"transmission_up": (30.0, 42.5), "distribution_up": (42.5, 55.0),
          "transmission_down": (10.0, 17.5), "distribution_down": (17.5, 25.0)},
}
"""Price ranges [EUR/MW] per case and bid class."""

TSO_NEED_DIRECTION = {"A": "up", "B": "up", "C": "up", "D": "down"}

BID_COLUMNS = [
    "resource", "fsp", "level", "feeder", "bus", "tx_bus", "direction", "quantity_mw",
    "cost_eur_per_mw", "price_eur_per_mw", "tan_phi", "critical",
]
"""Columns of a bid table. ``level`` is transmission or distribution; ``feeder`` is empty for
transmission bids; ``bus`` is the bus number in its own network and ``tx_bus`` the
transmission bus it affects (its coupling bus for distribution bids); ``tan_phi`` is the
reactive change per active change of the activation [MVAr/MW]."""


@dataclass(frozen=True)
class DeclaredBids:
    """What FSPs declare for one clearing, per bid (aligned with the bid table).

    Attributes:
        price_eur_per_mw: price in the first layer a bid is offered in [EUR/MW].
        quantity_mw: offered quantity [MW] (>= 0).
        forward_price_eur_per_mw: price in every later layer, for bids forwarded uncleared
            [EUR/MW]; None = the same price in all layers.
    """

    price_eur_per_mw: np.ndarray
    quantity_mw: np.ndarray
    forward_price_eur_per_mw: np.ndarray | None = None


@dataclass
class PriceRanges:
    """Price ranges [EUR/MW] that replace a case's defaults (:data:`DEFAULT_PRICES`); None
    keeps the case's own range. ``critical_*`` apply to case C's extra bids at critical
    nodes."""

    transmission_up: tuple[float, float] | None = option(None, rule=pair_rule(0.0, False))
    transmission_down: tuple[float, float] | None = option(None, rule=pair_rule(0.0, False))
    distribution_up: tuple[float, float] | None = option(None, rule=pair_rule(0.0, False))
    distribution_down: tuple[float, float] | None = option(None, rule=pair_rule(0.0, False))
    critical_up: tuple[float, float] | None = option(None, rule=pair_rule(0.0, False))
    critical_down: tuple[float, float] | None = option(None, rule=pair_rule(0.0, False))


@dataclass
class BidConfig:
    """How resources, bids and FSPs are drawn.

    Attributes:
        case: D3.3 case A, B, C or D (ALEXANDER D3.3 §4.2): the price ranges and the
            direction of the TSO need.
        liquidity: share of the potential resources that bid, in (0, 1].
        aggregation: none (one FSP per resource), by_feeder (one FSP per feeder, each
            transmission resource its own FSP) or random_pools (pools of ``pool_size``).
        pool_size: resources per FSP for random_pools.
        quantity_share: (low, high) share of the local load or generation offered [-].
        critical_bids_per_feeder: case C extra bid pairs per feeder at critical nodes.
        prices: price ranges replacing the case's defaults.
    """

    case: str = option("A", choices=CASES)
    liquidity: float = option(1.0, low=0, high=1, low_open=True)
    aggregation: str = option("none", choices=AGGREGATIONS)
    pool_size: int = option(10, low=1, only_for=("aggregation", ("random_pools",)))
    quantity_share: tuple[float, float] = option((0.1, 0.3), rule=pair_rule(0.0))
    critical_bids_per_feeder: int = option(4, low=0, only_for=("case", ("C",)))
    prices: PriceRanges = option(factory=PriceRanges)

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self)

    @property
    def direction(self) -> str:
        """Direction of the TSO need in this case: "up" or "down"."""
        return TSO_NEED_DIRECTION[self.case]

    def price_ranges(self) -> dict[str, PriceRange]:
        """The case's price ranges with the overrides of :attr:`prices` applied [EUR/MW]."""
        ranges = dict(DEFAULT_PRICES[self.case])
        ranges.update({k: tuple(v) for k, v in dataclasses.asdict(self.prices).items()
                       if v is not None})
        return ranges


def _draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _resources(system: InterconnectedSystem, cfg: BidConfig,
               rng: np.random.Generator) -> list[dict]:
    """Every potential resource of the system, in a fixed order, with seeded draws."""
    prices = cfg.price_ranges()
    out: list[dict] = []

    def add(level, feeder, bus, tx_bus, direction, qty, price_key, tan_phi, critical=False):
        if qty <= 1e-9:
            return
        cost = _draw(rng, prices[price_key])
        out.append(dict(level=level, feeder=feeder, bus=int(bus), tx_bus=int(tx_bus),
                        direction=direction, quantity_mw=qty, cost_eur_per_mw=cost,
                        tan_phi=tan_phi, critical=critical))

    tx = system.transmission
    for i, bus in enumerate(tx.buses):
        for amount in (system.tx_load_mw[i], system.tx_gen_mw[i]):
            for direction in ("up", "down"):
                qty = _draw(rng, cfg.quantity_share) * amount
                add("transmission", "", bus, bus, direction, qty, f"transmission_{direction}", 0.0)
    for f in system.feeders:
        dg = system.dg_mw[f.name]
        for j in range(1, f.n_buses):
            tan_phi = f.load_mvar[j] / f.load_mw[j] if f.load_mw[j] > 0 else 0.0
            for amount, phi in ((f.load_mw[j], tan_phi), (dg[j], 0.0)):
                for direction in ("up", "down"):
                    qty = _draw(rng, cfg.quantity_share) * amount
                    add("distribution", f.name, f.buses[j], f.coupling_bus, direction, qty,
                        f"distribution_{direction}", phi)
        if cfg.case == "C":
            for j in critical_buses(system, f.name, cfg.critical_bids_per_feeder):
                for direction in ("up", "down"):
                    qty = _draw(rng, cfg.quantity_share) * f.load_mw[j]
                    add("distribution", f.name, f.buses[j], f.coupling_bus, direction, qty,
                        f"critical_{direction}", f.load_mvar[j] / f.load_mw[j], critical=True)
    return out


def critical_buses(system: InterconnectedSystem, feeder: str, count: int) -> list[int]:
    """Bus indices below the tightened branches of ``feeder`` with the largest loads: the
    nodes where flexibility relieves the base congestion."""
    f = system.feeder(feeder)
    below = sorted({int(j) for k in system.congested[feeder] for j in f.subtree_buses(k)})
    below = [j for j in below if f.load_mw[j] > 0]
    return sorted(below, key=lambda j: -f.load_mw[j])[:count]


def _assign_fsps(bids: pd.DataFrame, cfg: BidConfig, rng: np.random.Generator) -> list[str]:
    if cfg.aggregation == "none":
        return [f"fsp{r}" for r in bids.resource]
    if cfg.aggregation == "by_feeder":
        return [f"fsp_{feeder}" if level == "distribution" else f"fsp{r}"
                for r, level, feeder in zip(bids.resource, bids.level, bids.feeder)]
    order = rng.permutation(len(bids))
    owner = np.empty(len(bids), dtype=object)
    for pos, i in enumerate(order):
        owner[i] = f"pool{pos // cfg.pool_size}"
    return list(owner)


def generate_bids(system: InterconnectedSystem, cfg: BidConfig,
                  rng: np.random.Generator) -> pd.DataFrame:
    """Draw resources, keep the participating share (liquidity), assign FSPs; truthful prices.

    Same system, config and generator state give the same table. Returns a bid table with
    ``BID_COLUMNS``, index 0..n-1 (the bid id).

    Raises:
        FlexgameInputError: an invalid setting, or a system whose TSO need points the other
            way than the case's (case D is a downward need; build the system with
            ``build_system(config, direction=cfg.direction)``).
    """
    cfg.validate()
    if system.direction != cfg.direction:
        raise FlexgameInputError(
            f"case {cfg.case} has a {'down' if cfg.direction == 'down' else 'up'}ward TSO need "
            f"but the system's need is {system.direction}ward; build the system with "
            f"direction={cfg.direction!r} (flexgame.Scenario.from_case does both)")
    pool = _resources(system, cfg, rng)
    n_keep = max(1, int(round(cfg.liquidity * len(pool))))
    keep = np.sort(rng.choice(len(pool), size=n_keep, replace=False))
    bids = pd.DataFrame([pool[i] for i in keep])
    bids.insert(0, "resource", keep)
    bids["price_eur_per_mw"] = bids.cost_eur_per_mw
    bids.insert(1, "fsp", _assign_fsps(bids, cfg, rng))
    return bids[BID_COLUMNS].reset_index(drop=True)


def direction_sign(bids: pd.DataFrame) -> np.ndarray:
    """Per bid, +1 for an upward bid (it raises injection / lowers net demand) and -1 for a
    downward one."""
    return np.where(bids.direction.to_numpy() == "up", 1.0, -1.0)


def validate_bids(bids: pd.DataFrame) -> None:
    """Stop on a bid table that a market cannot clear (names the offending bid)."""
    missing = [c for c in BID_COLUMNS if c not in bids.columns]
    if missing:
        raise FlexgameInputError(f"bid table lacks columns {missing}; needs {BID_COLUMNS}")
    quantity = bids.quantity_mw.to_numpy(dtype=float)
    bad = bids.index[~(np.isfinite(quantity) & (quantity >= 0))]
    if len(bad):
        raise FlexgameInputError(
            f"bid {bad[0]} has quantity_mw={bids.quantity_mw[bad[0]]}; quantities must be "
            "finite and >= 0"
        )
    bad = bids.index[~bids.direction.isin(["up", "down"])]
    if len(bad):
        raise FlexgameInputError(
            f"bid {bad[0]} has direction={bids.direction[bad[0]]!r}; allowed: up, down"
        )
    bad = bids.index[~bids.level.isin(["transmission", "distribution"])]
    if len(bad):
        raise FlexgameInputError(
            f"bid {bad[0]} has level={bids.level[bad[0]]!r}; allowed: transmission, distribution"
        )
    bad = bids.index[~np.isfinite(bids.price_eur_per_mw.to_numpy(dtype=float))]
    if len(bad):
        raise FlexgameInputError(f"bid {bad[0]} has a non-finite price")


# --- bid tables by hand ---------------------------------------------------------------------

def transmission_bid(fsp: str, bus: int, mw: float, cost: float, direction: str = "up") -> dict:
    """A truthful bid of a resource at transmission bus ``bus``: ``mw`` [MW] offered
    ``direction`` ("up": more injection / less consumption, "down": the opposite) at true
    cost ``cost`` [EUR/MW]. A row for :func:`bid_table`."""
    return dict(fsp=fsp, level="transmission", feeder="", bus=int(bus), tx_bus=int(bus),
                direction=direction, quantity_mw=float(mw), cost_eur_per_mw=float(cost),
                price_eur_per_mw=float(cost), tan_phi=0.0, critical=False)


def distribution_bid(fsp: str, feeder: str, bus: int, mw: float, cost: float,
                     direction: str = "up", tan_phi: float = 0.0,
                     system: InterconnectedSystem | None = None) -> dict:
    """A truthful bid of a resource at bus ``bus`` of feeder ``feeder``: ``mw`` [MW] offered
    ``direction`` at true cost ``cost`` [EUR/MW]; ``tan_phi`` is its reactive change per
    active change [MVAr/MW]. Its ``tx_bus`` is the feeder's coupling bus: taken from
    ``system`` when given, else left for :func:`bid_table` to fill from its system. A row for
    :func:`bid_table`."""
    tx_bus = None if system is None else system.feeder(feeder).coupling_bus
    return dict(fsp=fsp, level="distribution", feeder=feeder, bus=int(bus), tx_bus=tx_bus,
                direction=direction, quantity_mw=float(mw), cost_eur_per_mw=float(cost),
                price_eur_per_mw=float(cost), tan_phi=float(tan_phi), critical=False)


_REQUIRED = ("fsp", "level", "bus", "direction", "quantity_mw", "cost_eur_per_mw")
"""Keys every row of :func:`bid_table` needs; the other columns have defaults."""


def bid_table(rows, system: InterconnectedSystem | None = None) -> pd.DataFrame:
    """A validated bid table (:data:`BID_COLUMNS`, index = bid id 0..n-1) from rows such as
    :func:`transmission_bid` and :func:`distribution_bid` return.

    Defaults: ``resource`` = the row number, ``price_eur_per_mw`` = ``cost_eur_per_mw``
    (truthful), ``tan_phi`` = 0, ``critical`` = False, ``feeder`` = "" for transmission bids,
    ``tx_bus`` = the bus of a transmission bid, the feeder's coupling bus of a distribution
    bid (which needs ``system``). With a ``system``, every feeder, bus and coupling bus is
    checked against it.

    Raises:
        FlexgameInputError: naming the bid and what is missing or wrong.
    """
    table = []
    for i, row in enumerate(rows):
        missing = [k for k in _REQUIRED if k not in row]
        if missing:
            raise FlexgameInputError(f"bid {i} lacks {missing}; a bid needs {list(_REQUIRED)}")
        row = {"resource": i, "price_eur_per_mw": row["cost_eur_per_mw"], "tan_phi": 0.0,
               "critical": False, "feeder": "", "tx_bus": None, **row}
        if row["tx_bus"] is None:
            row["tx_bus"] = _coupling_bus(i, row, system)
        if system is not None:
            _check_location(i, row, system)
        table.append(row)
    bids = pd.DataFrame(table, columns=BID_COLUMNS)
    validate_bids(bids)
    return bids


def _coupling_bus(i: int, row: dict, system: InterconnectedSystem | None) -> int:
    """The transmission bus a bid affects: its own bus, or its feeder's coupling bus."""
    if row["level"] != "distribution":
        return row["bus"]
    if system is None:
        raise FlexgameInputError(f"bid {i} at feeder {row['feeder']!r} needs its feeder's "
                                 "coupling bus: pass system= (or tx_bus)")
    try:
        return system.feeder(row["feeder"]).coupling_bus
    except FlexgameInputError as exc:
        raise FlexgameInputError(f"bid {i}: {exc}") from None


def _check_location(i: int, row: dict, system: InterconnectedSystem) -> None:
    """Stop on a bid whose feeder, bus or coupling bus is not in ``system``."""
    try:
        system.transmission.bus_index(row["tx_bus"])
        if row["level"] == "distribution":
            feeder = system.feeder(row["feeder"])
            feeder.bus_index(row["bus"])
            if row["tx_bus"] != feeder.coupling_bus:
                raise FlexgameInputError(
                    f"tx_bus={row['tx_bus']} is not the coupling bus {feeder.coupling_bus} of "
                    f"feeder {feeder.name!r}")
    except FlexgameInputError as exc:
        raise FlexgameInputError(f"bid {i}: {exc}") from None
