"""Ex-post grid assessment: the judge of grid safety for every scheme.

Given the activated quantity of every bid, it recomputes the transmission flows (PTDF) and
every feeder's LinDistFlow state directly from the network equations, never from a clearing
model's variables, and counts violations (ALEXANDER D3.3 §4.1.3 b):

* a line congestion: feeder loading (|P| or |S|, per the system's ``feeder_line_limit``) or
  transmission active flow above the rating, or a feeder's |interface flow| above its
  interface limit (element ``interface`` of the feeder, kind ``line``; only for feeders with
  a limit, see :class:`flexgame.markets.system.SystemConfig`);
  its excess is (|flow| - rating) / rating x 100 %;
* a voltage violation: |V| below V_min or above V_max; its excess is the distance to the
  limit in % of the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flexgame.markets.grid_state import BidEffects, GridState

if TYPE_CHECKING:  # only for annotations: the system's summary assesses its base state
    from flexgame.markets.system import InterconnectedSystem

TOLERANCE = 1e-6
"""Relative tolerance below which an excess is numerical noise, not a violation."""


@dataclass(frozen=True)
class GridReport:
    """Outcome of an ex-post assessment.

    Attributes:
        congestions: number of lines (transmission and feeder, and feeder interfaces with a
            limit) over their rating.
        max_congestion_pct: largest excess over a rating [% of the rating], 0 if none.
        voltage_violations: number of feeder buses outside their voltage limits.
        max_voltage_violation_pct: largest excess over a voltage limit [% of the limit].
        residual_need_mw: TSO need left unmet by the activations [MW]; > 0 upward.
        elements: one row per checked element (network, element, kind, value, limit, excess_pct).
    """

    congestions: int
    max_congestion_pct: float
    voltage_violations: int
    max_voltage_violation_pct: float
    residual_need_mw: float
    elements: pd.DataFrame

    def __repr__(self) -> str:
        if self.grid_safe:
            verdict = "grid-safe"
        else:
            verdict = (f"{self.congestions} congestions (max {self.max_congestion_pct:.2f} %), "
                       f"{self.voltage_violations} voltage violations "
                       f"(max {self.max_voltage_violation_pct:.2f} %)")
        return (f"GridReport({verdict}, residual need {self.residual_need_mw:.2f} MW, "
                f"{len(self.elements)} elements checked)")

    @property
    def grid_safe(self) -> bool:
        """No congestion and no voltage violation."""
        return self.congestions == 0 and self.voltage_violations == 0


def assess(system: InterconnectedSystem, bids: pd.DataFrame,
           activation_mw: np.ndarray) -> GridReport:
    """Assess the grid with every bid activated by ``activation_mw`` (MW, aligned with
    ``bids`` rows); an all-zero vector assesses the base state."""
    effects = BidEffects.of(system, bids)
    return assess_state(system, GridState.base(system).after(effects, activation_mw))


def assess_state(system: InterconnectedSystem, state: GridState) -> GridReport:
    """Assess a grid state (see :class:`markets.grid_state.GridState`)."""
    rows = []
    flows = system.transmission.flows(state.tx_injection)
    for name, flow, rating in zip(system.transmission.line_names(), flows,
                                  system.transmission.rating_mw):
        rows.append(("transmission", name, "line", abs(flow), rating,
                     100.0 * (abs(flow) - rating) / rating))
    for f in system.feeders:
        if f.has_interface_limit:
            drawn, limit = abs(f.interface_mw(state.feeder_p[f.name])), f.interface_limit_mw
            rows.append((f.name, "interface", "line", drawn, limit,
                         100.0 * (drawn - limit) / limit))
        flow = f.solve(state.feeder_p[f.name], state.feeder_q[f.name])
        for name, s, rating in zip(f.branch_names(), flow.loading(system.feeder_line_limit),
                                   f.rating_mva):
            rows.append((f.name, name, "line", s, rating, 100.0 * (s - rating) / rating))
        v = flow.v_pu
        for bus, vm, lo, hi in zip(f.buses, v, f.v_min, f.v_max):
            excess = max(100.0 * (lo - vm) / lo, 100.0 * (vm - hi) / hi)
            rows.append((f.name, str(bus), "voltage", vm, lo if vm < lo else hi, excess))
    elements = pd.DataFrame(
        rows, columns=["network", "element", "kind", "value", "limit", "excess_pct"]
    )
    over = elements[elements.excess_pct > 100 * TOLERANCE]
    lines = over[over.kind == "line"]
    volts = over[over.kind == "voltage"]
    return GridReport(
        congestions=len(lines),
        max_congestion_pct=float(lines.excess_pct.max()) if len(lines) else 0.0,
        voltage_violations=len(volts),
        max_voltage_violation_pct=float(volts.excess_pct.max()) if len(volts) else 0.0,
        residual_need_mw=state.residual_need_mw,
        elements=elements,
    )


def assess_base_state(system: InterconnectedSystem) -> GridReport:
    """The base state before any market: the DSO needs show as violations."""
    return assess_state(system, GridState.base(system))
