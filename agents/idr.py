"""Mesa agents of implicit demand response in the single imbalance market (seed 000 KER 3).

Three agents act in each step, one step being one quarter-hour (quarter-hours are
independent, flexgame's IDR reference §1):

* the :class:`BRPAgent` decides its retail price from what it believes: its flexibility curve
  (fitted by inverse optimisation, or given) and the quarter-hour's reserve bids and system
  imbalance, by solving its bilevel (:func:`flexgame.games.brp.solve_by_enumeration`);
* the :class:`IDRPortfolioAgent` answers that price with its *actual* demand, from a
  response model of its own (:class:`ActualResponse`), which need not be the BRP's belief;
* the :class:`TSOAgent` clears the SIM against the residual imbalance that actual demand
  leaves and sets the single imbalance price (:class:`flexgame.markets.imbalance.MeritOrder`,
  the marginal activated bid; at R = 0 the first bid in the direction of the system
  imbalance).

The BRP is settled ex post, on the actual demand and price; its ex-ante (planned) profit is
kept beside it. An *over-activation* is a quarter-hour whose actual residual imbalance has
the opposite sign of the system imbalance: the BRP's response tipped the system over (seed 000
§4: "extreme over-activation").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import mesa
import numpy as np
import pandas as pd

from flexgame.games.brp import BRPDecision, BRPSlot, settle, solve_by_enumeration
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.imbalance import BOUNDARY_TOLERANCE_MW, MeritOrder, ReserveBids


@dataclass(frozen=True)
class QuarterHour:
    """What a quarter-hour holds besides the DR: the TSO's reserve bids, the system
    imbalance S [MW] (> 0 surplus), the BRP's day-ahead position P^DA [MW] at lambda^DA
    [EUR/MWh], and its highest retail price [EUR/MWh]."""

    reserve: ReserveBids
    system_imbalance_mw: float
    day_ahead_mw: float
    day_ahead_price: float
    max_retail_price: float


class ActualResponse(Protocol):
    """The DR's actual demand [MW] in quarter-hour ``t`` at retail price ``price``
    [EUR/MWh]; ``planned_mw`` is the demand the BRP expects, which a portfolio indifferent
    between several demands (a price on a block's willingness to pay) may follow."""

    def __call__(self, t: int, price: float, planned_mw: float) -> float: ...


@dataclass(frozen=True)
class CurveResponse:
    """An actual response that follows a flexibility curve exactly (per quarter-hour, or one
    for all): where the curve is indifferent it takes the demand closest to the plan."""

    curves: FlexibilityCurve | list[FlexibilityCurve]

    def __call__(self, t: int, price: float, planned_mw: float) -> float:
        curve = self.curves if isinstance(self.curves, FlexibilityCurve) else self.curves[t]
        low, high = curve.response(price)
        return float(np.clip(planned_mw, low, high))


class BRPAgent(mesa.Agent):
    """The balance responsible party: sets its retail price from its belief.

    Attributes:
        beliefs: its flexibility curve per quarter-hour (or one for all).
        decision: its last (ex-ante) decision.
    """

    def __init__(self, model, beliefs: FlexibilityCurve | list[FlexibilityCurve]):
        super().__init__(model)
        self.beliefs = beliefs
        self.decision: BRPDecision | None = None

    def __repr__(self) -> str:
        return f"BRPAgent({self.decision!r})"

    def belief(self, t: int) -> FlexibilityCurve:
        return self.beliefs if isinstance(self.beliefs, FlexibilityCurve) else self.beliefs[t]

    def decide(self, t: int, quarter: QuarterHour) -> BRPDecision:
        """Its optimal retail price for quarter-hour ``t`` under its belief."""
        self.decision = solve_by_enumeration(self.slot(t, quarter))
        return self.decision

    def slot(self, t: int, quarter: QuarterHour) -> BRPSlot:
        return BRPSlot(self.belief(t), quarter.reserve, quarter.system_imbalance_mw,
                       quarter.day_ahead_mw, quarter.day_ahead_price, quarter.max_retail_price)


class IDRPortfolioAgent(mesa.Agent):
    """The implicit-DR portfolio: consumes what its actual response gives at the price."""

    def __init__(self, model, response: ActualResponse):
        super().__init__(model)
        self.response = response
        self.demand_mw = float("nan")

    def __repr__(self) -> str:
        return f"IDRPortfolioAgent(demand {self.demand_mw:.2f} MW)"

    def respond(self, t: int, price: float, planned_mw: float) -> float:
        self.demand_mw = float(self.response(t, price, planned_mw))
        return self.demand_mw


class TSOAgent(mesa.Agent):
    """The TSO: clears the single imbalance market of each quarter-hour."""

    def __init__(self, model):
        super().__init__(model)
        self.outcome = None

    def __repr__(self) -> str:
        return f"TSOAgent({self.outcome!r})"

    def clear(self, quarter: QuarterHour, residual_mw: float):
        merit = MeritOrder(quarter.reserve)
        self.outcome = merit.clear(residual_mw, lean=quarter.system_imbalance_mw)
        return self.outcome


class ImplicitDRModel(mesa.Model):
    """A BRP with implicit DR over a horizon of quarter-hours (one step each).

    Args:
        quarters: the quarter-hours.
        beliefs: the BRP's flexibility curve per quarter-hour (or one for all).
        response: the DR's actual response (default: it follows the BRP's belief).
        rng: the model's random generator (Mesa's ``rng``; the agents here draw nothing).
    """

    def __init__(self, quarters: list[QuarterHour],
                 beliefs: FlexibilityCurve | list[FlexibilityCurve],
                 response: ActualResponse | None = None, rng=None):
        super().__init__(rng=rng)
        self.quarters = quarters
        self.brp = BRPAgent(self, beliefs)
        self.portfolio = IDRPortfolioAgent(self, response or CurveResponse(beliefs))
        self.tso = TSOAgent(self)
        self.t = 0
        self.rows: list[dict] = []

    def __repr__(self) -> str:
        return f"ImplicitDRModel({len(self.quarters)} quarter-hours, at {self.t})"

    @property
    def done(self) -> bool:
        return self.t >= len(self.quarters)

    def step(self) -> None:
        """One quarter-hour: the BRP decides, the DR responds, the TSO clears, the BRP is
        settled ex post."""
        t, quarter = self.t, self.quarters[self.t]
        plan = self.brp.decide(t, quarter)
        demand = self.portfolio.respond(t, plan.retail_price, plan.demand_mw)
        deviation = demand - quarter.day_ahead_mw
        sim = self.tso.clear(quarter, quarter.system_imbalance_mw - deviation)
        actual = settle(self.brp.slot(t, quarter), plan.retail_price, demand, sim.price)
        s, r = quarter.system_imbalance_mw, sim.residual_mw
        self.rows.append(dict(
            quarter_hour=t, system_imbalance_mw=s, retail_price_eur_per_mwh=plan.retail_price,
            planned_demand_mw=plan.demand_mw, demand_mw=demand,
            planned_imbalance_price_eur_per_mwh=plan.imbalance_price,
            imbalance_price_eur_per_mwh=sim.price, residual_imbalance_mw=r,
            up_mw=actual.up_mw, down_mw=actual.down_mw, sim_eur=actual.sim_eur,
            dr_net_eur=actual.dr_net_eur, net_eur=actual.net_eur, planned_net_eur=plan.net_eur,
            over_activation=bool(abs(r) > BOUNDARY_TOLERANCE_MW and np.sign(r) * np.sign(s) < 0),
            unmet_imbalance_mw=sim.unmet_mw))
        self.t += 1

    def run(self) -> pd.DataFrame:
        """Step through every quarter-hour; one row per quarter-hour (units in the column
        names)."""
        while not self.done:
            self.step()
        return self.table()

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
