"""Implicit DR decided before the flexibility market clears (issue 13, item 8).

ALEXANDER D3.3 groups its market designs in clusters; cluster 4 combines explicit
flexibility (the TSO-DSO markets of flexgame) with implicit flexibility. Seed 000 KER 3's BRP
is that implicit side: it reads the system's imbalance and the price it would be settled at,
and moves its DR's demand by a retail price signal (:mod:`flexgame.games.brp`). Decided
first, its response changes what the TSO's flexibility market must buy.

Here, per run: the system's TSO need is a system imbalance S = -need (a need upward, demand
over generation, is a short system); the BRP's merit order is the scenario's own
transmission bids (their EUR/MW read as EUR/MWh of its quarter-hour), closed in each
direction by the TSO's valuation of unmet need (``scheme.penalties.unmet_need``, beyond
every bid); its DR is the test slot's flexibility curve (IDR reference §3) scaled to
``flexible_mw`` of flexible demand, with the test slot's day-ahead position, price and price
cap. Its deviation D - P^DA changes the load at its transmission bus and the TSO's need by
the same MW (:func:`with_demand_change`); the flexibility market then clears the need that
is left. The DR's demand enters the flows at its bus only (not spread over feeders).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.games.brp import BRPDecision, BRPSlot, solve_by_enumeration
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.imbalance import ReserveBids
from flexgame.markets.options import option
from flexgame.markets.system import InterconnectedSystem

RESERVE_BEYOND_BIDS_MW = 1e4
"""Volume of the closing bids at the unmet-need valuation [MW]: more than any need."""


@dataclass
class ImplicitDRCoupling:
    """The ``implicit_dr`` settings of a TSO-DSO run.

    Attributes:
        enabled: a BRP's implicit DR responds before the flexibility market.
        bus: its transmission bus (None: the bus with the largest load).
        flexible_mw: Pmax - Pmin of its DR [MW] (the test slot's curve scaled to it).
    """

    enabled: bool = option(False)
    bus: int | None = option(None, only_for=("enabled", (True,)))
    flexible_mw: float = option(5.0, low=0, low_open=True, only_for=("enabled", (True,)))


def dr_curve(flexible_mw: float) -> tuple[FlexibilityCurve, float]:
    """The test slot's curve and day-ahead position scaled to ``flexible_mw`` of flexible
    demand: (curve, P^DA [MW])."""
    from flexgame.experiments.idr_cases import DAY_AHEAD_MW, TEST_SLOT_CURVE

    scale = flexible_mw / (TEST_SLOT_CURVE.p_max - TEST_SLOT_CURVE.p_min)
    curve = FlexibilityCurve(TEST_SLOT_CURVE.p_min * scale, TEST_SLOT_CURVE.p_max * scale,
                             TEST_SLOT_CURVE.w)
    return curve, DAY_AHEAD_MW * scale


def reserve_of(bids: pd.DataFrame, unmet_need_eur: float) -> ReserveBids:
    """The TSO's balancing merit order from the transmission bids, closed in each direction
    by a bid at the unmet-need valuation (up at +, down at - ``unmet_need_eur``). A
    downward bid asking p EUR/MW costs the TSO p: its A- (what its provider pays) is -p."""
    tx = bids[bids.level == "transmission"]
    up, down = tx[tx.direction == "up"], tx[tx.direction == "down"]
    return ReserveBids(np.r_[up.price_eur_per_mw.to_numpy(float), unmet_need_eur],
                       np.r_[up.quantity_mw.to_numpy(float), RESERVE_BEYOND_BIDS_MW],
                       np.r_[-down.price_eur_per_mw.to_numpy(float), -unmet_need_eur],
                       np.r_[down.quantity_mw.to_numpy(float), RESERVE_BEYOND_BIDS_MW])


def with_demand_change(system: InterconnectedSystem, bus: int,
                       delta_mw: float) -> InterconnectedSystem:
    """``system`` with ``delta_mw`` more load at transmission bus ``bus`` [MW] (< 0: less)
    and its TSO need changed by the same MW (more demand, more need upward)."""
    load = system.tx_load_mw.copy()
    load[system.transmission.bus_index(bus)] += delta_mw
    return dataclasses.replace(system, tx_load_mw=load,
                               tso_need_mw=system.tso_need_mw + delta_mw)


def respond(system: InterconnectedSystem, bids: pd.DataFrame, coupling: ImplicitDRCoupling,
            unmet_need_eur: float) -> tuple[BRPDecision, int, InterconnectedSystem]:
    """The BRP's decision against the system's need, its bus, and the system after it."""
    from flexgame.experiments.idr_cases import DAY_AHEAD_PRICE, MAX_RETAIL_PRICE

    bus = coupling.bus
    if bus is None:
        bus = int(system.transmission.buses[int(np.argmax(system.tx_load_mw))])
    elif bus not in set(system.transmission.buses.tolist()):
        raise FlexgameInputError(f"implicit_dr.bus={bus} is not a transmission bus; buses are "
                                 f"{system.transmission.buses.min()}..."
                                 f"{system.transmission.buses.max()}")
    curve, day_ahead_mw = dr_curve(coupling.flexible_mw)
    slot = BRPSlot(curve, reserve_of(bids, unmet_need_eur), -system.tso_need_mw, day_ahead_mw,
                   DAY_AHEAD_PRICE, MAX_RETAIL_PRICE)
    decision = solve_by_enumeration(slot)
    return decision, bus, with_demand_change(system, bus, decision.demand_mw - day_ahead_mw)
