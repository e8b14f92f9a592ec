"""AC confirmation of continuous-market matches (seed 003 §3.2, "dispatch validation" by a
power flow), the option ``network_check="ac"`` of
:class:`flexgame.markets.continuous.ContinuousMarket`.

The LinDistFlow rows (:mod:`flexgame.markets.feeder_limits`) propose the largest feasible
quantity of a match; this check then runs a Newton-Raphson power flow of the feeder with the
match applied (the pandapower feeder network of :func:`flexgame.markets.ac_assessment.feeder_net`:
the same buses, lines, r and x as LinDistFlow, root held at ``sqrt(v0_sq)``) and compares, as
the AC ex-post assessment does, each line's loading (|P| or |S|, the larger of its two ends)
with its rating and each bus voltage with its limits. Same modes as the linear check:

* "strict": every element within its limit after the match;
* "no_worsening": no element's excess over its limit grows beyond max(excess before the match,
  0) (excesses of the AC state the confirmed matches left).

A power flow that does not converge confirms nothing (the match is not validated).
"""

from __future__ import annotations

import numpy as np

from flexgame.markets.ac_assessment import run_power_flow, feeder_net
from flexgame.markets.errors import FlexgameInputError, SolverError
from flexgame.markets.feeder_limits import TOLERANCE, FeederLimits


class ACMatchCheck:
    """The AC power flow of one feeder, built once; loads change per check.

    Args:
        limits: the feeder's linear limits (their feeder, base state, line-limit kind and mode).

    Raises:
        SolverError: the base state's power flow does not converge.
        FlexgameInputError: mode "strict" on a base state that violates a limit in AC.
    """

    def __init__(self, limits: FeederLimits):
        self.feeder, self.mode, self.kind = limits.feeder, limits.mode, limits.line_limit
        self.base_p, self.base_q = limits.base_p.copy(), limits.base_q.copy()
        self.net = feeder_net(self.feeder)
        self._first = True
        self.power_flows = 0
        base = self.excess(np.zeros_like(self.base_p), np.zeros_like(self.base_q))
        if base is None:
            raise SolverError(f"AC power flow of the base state of feeder {self.feeder.name!r} "
                              "did not converge")
        if self.mode == "strict" and base.max() > TOLERANCE:
            raise FlexgameInputError(
                f"network_check 'ac' in mode 'strict' needs a base state within limits in AC, "
                f"but feeder {self.feeder.name!r} exceeds a limit by {base.max():.4g}; use mode "
                "'no_worsening'")
        self.base_excess = base

    def __repr__(self) -> str:
        return (f"ACMatchCheck({self.feeder.name!r}, {self.mode}, {self.power_flows} power "
                "flows run)")

    def excess(self, dp: np.ndarray, dq: np.ndarray) -> np.ndarray | None:
        """Excess of every element over its limit with net demand changed by ``dp``, ``dq``
        [MW, MVAr per bus]: line loading - rating [MW or MVA], v - v_max and v_min - v
        [p.u.]; None when the power flow does not converge."""
        self.net.load["p_mw"] = self.base_p + dp
        self.net.load["q_mvar"] = self.base_q + dq
        self.power_flows += 1
        if not run_power_flow(self.net, self._first):
            self._first = True
            self.net["_ppc"] = None
            return None
        self._first = False
        res = self.net.res_line
        if self.kind == "active":
            loading = np.maximum(res.p_from_mw.abs(), res.p_to_mw.abs()).to_numpy()
        else:
            loading = np.maximum(np.hypot(res.p_from_mw, res.q_from_mvar),
                                 np.hypot(res.p_to_mw, res.q_to_mvar)).to_numpy()
        vm = self.net.res_bus.vm_pu.to_numpy()
        f = self.feeder
        return np.r_[loading - f.rating_mva, vm - f.v_max, f.v_min - vm]

    def accepts(self, dp: np.ndarray, dq: np.ndarray,
                before: np.ndarray) -> np.ndarray | None:
        """The excesses after the change when the mode admits it from the excesses
        ``before`` it, else None."""
        after = self.excess(dp, dq)
        if after is None:
            return None
        allowed = 0.0 if self.mode == "strict" else np.maximum(before, 0.0)
        return after if np.all(after <= allowed + TOLERANCE) else None
