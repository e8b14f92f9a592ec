"""Limit rows of one feeder in LinDistFlow form, for order-by-order network checks.

Each order of the continuous market (:mod:`flexgame.markets.continuous`) changes the
feeder's limit rows linearly: row r changes by ``column(order)[r]`` per MW of its activation
(:func:`flexgame.markets.prequalification.limit_sensitivities`, LinDistFlow of Baran & Wu
1989 as in :mod:`flexgame.markets.distribution`), and the headroom of the rows at the base
state is :func:`flexgame.markets.prequalification.limit_headroom`. A match of ``q`` MW between
a buy and a sell order changes the headroom by ``-q (g_buy + g_sell)``.

Two check modes:

* ``"strict"``: after a confirmed match every row is within its limit (headroom >= 0);
* ``"no_worsening"``: a match may not create a violation nor worsen a row already violated
  (seed 003 §3.2: a match "would not deteriorate the situation of the network"; the same
  rule as ALEXANDER D3.3 §4.3.4 ML06 in :mod:`flexgame.markets.prequalification`).

Both admit a partial match up to the largest feasible quantity: the feasible quantities of a
match form an interval (the rows are linear in q).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexgame.markets.distribution import Feeder, limit_directions
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.grid_state import GridState
from flexgame.markets.orders import Order
from flexgame.markets.prequalification import limit_headroom, limit_sensitivities

CHECK_MODES = ("strict", "no_worsening")
TOLERANCE = 1e-9
"""Slack on a limit row [MW, MVA or p.u.^2] that counts as within the limit."""


class FeederLimits:
    """A feeder's limit rows, their base headroom and the sensitivity of every bus.

    Args:
        feeder: the feeder the orders are located on.
        state: the operating point before the market (its net demand on the feeder).
        line_limit: "active" or "apparent" (see :func:`limit_directions`).
        polygon_sides: sides of the polygon inscribed in |S| <= rating (apparent only).
        mode: "strict" or "no_worsening".
    """

    def __init__(self, feeder: Feeder, state: GridState, line_limit: str = "active",
                 polygon_sides: int = 12, mode: str = "strict"):
        require_choice("network_check mode", mode, CHECK_MODES)
        self.feeder, self.mode, self.line_limit = feeder, mode, line_limit
        self.base_p = np.asarray(state.feeder_p[feeder.name], float).copy()
        self.base_q = np.asarray(state.feeder_q[feeder.name], float).copy()
        self.angles, self.shrink = limit_directions(line_limit, polygon_sides)
        self.base_headroom = limit_headroom(feeder, state, self.angles, self.shrink)
        if mode == "strict" and self.base_headroom.min() < -TOLERANCE:
            row = int(np.argmin(self.base_headroom))
            raise FlexgameInputError(
                f"network_check mode 'strict' needs a base state within limits, but limit row "
                f"{row} of feeder {feeder.name!r} is violated by {-self.base_headroom[row]:.4g}; "
                "use mode 'no_worsening'")
        # unit upward activation per bus, without and with reactive change (tan_phi = 1)
        buses = pd.DataFrame({"bus": feeder.buses, "direction": "up", "tan_phi": 0.0})
        members = np.arange(feeder.n_buses)
        self._active = limit_sensitivities(feeder, buses, members, self.angles).toarray()
        reactive = limit_sensitivities(feeder, buses.assign(tan_phi=1.0), members, self.angles)
        self._reactive = reactive.toarray() - self._active

    def __repr__(self) -> str:
        return (f"FeederLimits({self.feeder.name!r}, {self.mode}, {self.n_rows} rows, "
                f"min base headroom {self.base_headroom.min():.4g})")

    @property
    def n_rows(self) -> int:
        return len(self.base_headroom)

    def column(self, order: Order) -> np.ndarray:
        """Change of every row per MW of the order's activation (MW, MVA or p.u.^2 per MW)."""
        b = self.feeder.bus_index(order.bus)
        sign = 1.0 if order.direction == "up" else -1.0
        return sign * (self._active[:, b] + order.tan_phi * self._reactive[:, b])

    def floor(self, headroom: np.ndarray) -> np.ndarray | float:
        """Least headroom per row a match may leave: 0 (strict) or min(headroom, 0)."""
        return 0.0 if self.mode == "strict" else np.minimum(headroom, 0.0)

    def max_quantity(self, headroom: np.ndarray, g: np.ndarray, upper: float) -> float:
        """Largest q in [0, upper] with headroom - q g >= floor in every row, or 0 when no
        positive q is feasible [MW]. A row counts as within its floor up to
        :data:`TOLERANCE`, but the quantity never uses that slack."""
        slack = headroom - self.floor(headroom)
        grows = g > 1e-12
        shrinks = g < -1e-12
        flat = ~(grows | shrinks)
        if np.any(slack[flat] < -TOLERANCE):
            return 0.0
        hi = float(np.min(np.maximum(slack[grows], 0.0) / g[grows])) if grows.any() else np.inf
        lo = float(np.max((slack[shrinks] + TOLERANCE) / g[shrinks])) if shrinks.any() else -np.inf
        q = min(hi, upper)
        return q if q > 0 and q >= lo else 0.0

    def auction_upper(self) -> np.ndarray:
        """Upper bound of ``column @ activation`` per row for a whole clearing: the base
        headroom (strict) or its positive part (no_worsening)."""
        h = self.base_headroom
        return h.copy() if self.mode == "strict" else np.maximum(h, 0.0)
