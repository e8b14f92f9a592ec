"""DSO blocking after clearing: the fourth way of handling DSO constraints of FLEXGRID D5.1
§4.4 (seed 003, Table 13).

The TSO market clears every bid against the TSO need and the transmission limits, blind to
the feeders (as in ml01's TSO layer). The DSOs then check the result ex post on their
feeders (LinDistFlow at the state the activations leave, the rows of
:func:`flexgame.markets.prequalification.limit_sensitivities`: line limits, voltage limits,
interface limits) and block, one at a time, the activated distribution bid that contributes
most to the worst violation (its sensitivity on that row times its activation); the TSO
market clears again without the blocked bids. This repeats until the feeders are within
their limits or no activated bid worsens the worst violation any more (nothing left to
block): the result then keeps that violation, reported by the ex-post check like any
other. Blocking only removes activations, so it relieves the violations the market's
activations cause, not the feeders' own needs of the base state (a congested line that
needs flexibility stays congested).

The worst violation is the row with the largest excess relative to its limit (line rows
over the rating, voltage rows over the squared limit, interface rows over the interface
limit). Each iteration re-solves the TSO market warm; the number of iterations is at most
the number of distribution bids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexgame.markets.distribution import limit_directions
from flexgame.markets.pipeline import BuiltLayer, ClearingRun
from flexgame.markets.prequalification import limit_headroom, limit_sensitivities
from flexgame.markets.system import InterconnectedSystem

EXCESS_TOLERANCE = 1e-6
"""Relative excess below which a row counts as within its limit (as the ex-post check)."""


class DSOBlockingStage:
    """The TSO market with the DSOs' blocking loop after it, built once per scheme.

    Args:
        system, bids: the scenario.
        layer: the TSO market (all bids, balance, PTDF limits, no feeder).
        polygon_sides: as in the market layers (apparent line limits only).

    Attributes:
        blocked: the bids blocked in the last clearing (bid ids).
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame, layer: BuiltLayer,
                 polygon_sides: int):
        self.layers = [layer]
        self.system = system
        angles, self.shrink = limit_directions(system.feeder_line_limit, polygon_sides)
        self.angles = angles
        self.parts = []  # (feeder, member bids, sensitivities rows x members, row scales)
        for f in system.feeders:
            members = np.flatnonzero((bids.feeder == f.name).to_numpy())
            if not len(members):
                continue
            g = limit_sensitivities(f, bids, members, angles).toarray()
            scale = np.r_[np.repeat(self.shrink * f.rating_mva, len(angles)),
                          f.v_max**2, f.v_min**2,
                          [f.interface_limit_mw] * 2 if f.has_interface_limit else []]
            self.parts.append((f, members, g, scale))
        self.blocked = np.zeros(0, dtype=np.int64)

    def __repr__(self) -> str:
        return (f"DSOBlockingStage({len(self.parts)} feeders, "
                f"{sum(len(p[1]) for p in self.parts)} distribution bids)")

    def culprit(self, state, activation_mw: np.ndarray) -> int | None:
        """The bid to block at ``state`` (after ``activation_mw``): the activated bid that
        contributes most to the worst violation, or None when the feeders are within their
        limits or no activated bid worsens the worst violation."""
        worst, worst_excess = None, EXCESS_TOLERANCE
        for f, members, g, scale in self.parts:
            excess = -limit_headroom(f, state, self.angles, self.shrink) / scale
            row = int(np.argmax(excess))
            if excess[row] > worst_excess:
                worst, worst_excess = (members, g[row]), excess[row]
        if worst is None:
            return None
        members, row = worst
        contribution = row * activation_mw[members]  # headroom consumed per bid
        best = int(np.argmax(contribution))
        return int(members[best]) if contribution[best] > 0 else None

    def clear(self, run: ClearingRun) -> None:
        built = self.layers[0]
        blocked: list[int] = []
        offered = run.remaining.copy()
        while True:
            out = built.layer.solve(run.price, offered, run.state,
                                    run.state.residual_need_mw)
            bid = self.culprit(run.state.after(run.effects, out.activation_mw),
                               out.activation_mw)
            if bid is None:
                break
            blocked.append(bid)
            offered[bid] = 0.0
        self.blocked = np.array(blocked, dtype=np.int64)
        run.offer(built.name, built.operator, built.layer, offered)
        run.apply(built.name, built.operator, out, run.price)
