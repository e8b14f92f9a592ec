"""Ties: how a market layer splits bids of equal declared price.

A layer's LP is indifferent between equally priced bids that do the same job, so its optimum
alone does not say which of them clears; left to the solver, the split would follow the
warm-start basis, i.e. the solve history. ``ClearingConfig.ties`` chooses the rule:

* ``bid_order`` (the default): each bid's cost in the LP carries a tiny step by bid id
  (:func:`tie_break`), so equally priced bids clear in bid-id order, the first one fully
  before the next; one LP per clearing. The split, and with it the equilibria of the
  strategic game wherever bids tie (e.g. several at the price cap), depends on the row
  order of the bid table.
* ``pro_rata``: every equally priced bid at the margin gets the same share of its offered
  quantity, whatever the row order: the rationing rule of divisible-good auctions, whose
  choice changes the set of equilibria (Kremer & Nyborg, "Divisible-good auctions: the role
  of allocation rules", RAND Journal of Economics 35(1), 2004, pp. 147-159).
  :class:`ProRata` computes it with a second stage after the LP.

Procurement cost and penalties are the LP optimum under both rules (up to the tie-break's
1e-6 EUR/MW per bid id under ``bid_order``); only which of the tied bids deliver differs.
"""

from __future__ import annotations

import numpy as np

from flexgame.markets.lp import CompiledLP, LPSolution

TIE_RULES = ("bid_order", "pro_rata")

TIE_BREAK_EUR_PER_MW = 1e-6
"""Price step by bid id that makes equally priced bids clear in bid-id order, whatever the
solve history (HiGHS warm-starts; without it, ties would split by the previous basis)."""

DUAL_TOLERANCE = 1e-6
"""Reduced costs [EUR/MW] and row duals smaller than this in absolute value count as zero
when :class:`ProRata` reads the least-cost clearings off the LP's duals."""


def tie_break(bid_ids: np.ndarray) -> np.ndarray:
    """Tiny increasing cost by bid id [EUR/MW] (at most 1e-6 x number of bids; procurement
    cost is always computed with the declared prices, without it)."""
    return TIE_BREAK_EUR_PER_MW * np.asarray(bid_ids, dtype=float)


class ProRata:
    """The pro-rata split of one market layer, built once with the layer.

    Stage 1 is the layer's LP at the declared prices, without tie-break: its optimum and an
    optimal dual solution (row duals y, reduced costs d). Stage 2 chooses, among all
    least-cost clearings, the one minimising sum_b a_b^2 / q_b over the tied bids b (equally
    priced bids, at least two per price, offering q_b > 0 MW to this layer and not priced out
    or in by the duals: |d_b| <= :data:`DUAL_TOLERANCE`), a convex QP solved by HiGHS.

    Why this is exact:

    * The least-cost clearings are the primal solutions complementary to the stage-1 dual
      (LP duality: a feasible x is optimal if and only if it is complementary to one, and then
      to every, optimal dual). So stage 2 is the layer's own LP, every grid, balance and
      interface row included, with the bounds that complementarity fixes: a column with
      d_j > 0 at its lower bound, d_j < 0 at its upper bound, a row with y_i > 0 at its lower
      bound, y_i < 0 at its upper bound. No cost row is needed: every point of it costs the
      LP optimum, penalties included (duals within :data:`DUAL_TOLERANCE` of 0 count as 0,
      so a move along them may cost at most 1e-6 EUR per MW moved).
    * f(a) = sum_b a_b^2 / q_b is strictly convex in the tied bids, so their quantities are
      unique whatever the solve history. Bids of one price that are interchangeable at the
      margin (only their total A is fixed) get a_b = A q_b / sum q (stationarity:
      2 a_b / q_b is the same for all of them): pro rata. Where a grid limit keeps some of
      them below their share, the others share the rest in proportion to their quantities.

    Stage 2 runs only when tied bids are at the margin; otherwise stage 1's solution is
    already the clearing. The QP is the layer's model re-bounded, with a diagonal Hessian set
    per clearing: nothing is rebuilt.

    Args:
        lp: the layer's LP.
        bid_cols: its columns of the layer's bids, in the layer's bid order.
    """

    def __init__(self, lp: CompiledLP, bid_cols: np.ndarray):
        self.lp, self.bid_cols = lp, bid_cols
        self.face = CompiledLP(np.zeros(lp.n_cols), lp.a_matrix, lp.row_lower, lp.row_upper,
                               lp.col_lower, lp.col_upper)
        # HiGHS regularises QPs by default (1e-7 x^2 on every column), which would shift the
        # split by ~1e-7 MW; without it the minimiser is exact to rounding
        self.face.highs.setOptionValue("qp_regularization_value", 0.0)
        self._all_cols = np.arange(lp.n_cols)
        self._all_rows = np.arange(lp.n_rows)

    def __repr__(self) -> str:
        return f"ProRata({len(self.bid_cols)} bids, {self.face})"

    @staticmethod
    def tied(price: np.ndarray, offered_mw: np.ndarray, reduced_cost: np.ndarray) -> np.ndarray:
        """Positions of the tied bids at the margin among the layer's bids: offering > 0 MW,
        |reduced cost| <= :data:`DUAL_TOLERANCE`, and sharing their declared price [EUR/MW]
        with another such bid."""
        free = np.flatnonzero((offered_mw > 0) & (np.abs(reduced_cost) <= DUAL_TOLERANCE))
        _, group, size = np.unique(price[free], return_inverse=True, return_counts=True)
        return free[size[group] > 1]

    def split(self, sol: LPSolution, price: np.ndarray, offered_mw: np.ndarray) -> np.ndarray:
        """Column values of the pro-rata clearing, given the optimal stage-1 solution ``sol``
        of the layer's LP and the layer's bids' declared ``price`` [EUR/MW] and
        ``offered_mw`` [MW].

        Raises:
            SolverError: stage 2 (the QP) has no optimal solution.
        """
        tied = self.tied(price, offered_mw, sol.reduced_cost[self.bid_cols])
        if not len(tied):
            return sol.x
        lp, d, y = self.lp, sol.reduced_cost, sol.row_dual
        col_lower, col_upper = lp.col_lower.copy(), lp.col_upper.copy()
        at_lower = (d > DUAL_TOLERANCE) & np.isfinite(col_lower)
        at_upper = (d < -DUAL_TOLERANCE) & np.isfinite(col_upper)
        col_upper[at_lower], col_lower[at_upper] = col_lower[at_lower], col_upper[at_upper]
        row_lower, row_upper = lp.row_lower.copy(), lp.row_upper.copy()
        at_lower = (y > DUAL_TOLERANCE) & np.isfinite(row_lower)
        at_upper = (y < -DUAL_TOLERANCE) & np.isfinite(row_upper)
        row_upper[at_lower], row_lower[at_upper] = row_lower[at_lower], row_upper[at_upper]
        face = self.face
        face.set_col_bounds(self._all_cols, col_lower, col_upper)
        face.set_row_bounds(self._all_rows, row_lower, row_upper)
        face.set_quadratic(self.bid_cols[tied], 2.0 / offered_mw[tied])
        return face.solve().require_optimal("pro-rata split of tied bids (stage 2)").x
