"""A linear program compiled once and re-solved many times in a persistent HiGHS instance.

The clearing models are written in Pyomo (readable, close to the maths,
:mod:`flexgame.markets.constraints`) and assembled once as arrays by
:mod:`flexgame.markets.lp_builder`: the same standard form Pyomo's
``LinearStandardFormCompiler`` makes of them (:meth:`CompiledLP.from_pyomo`, which the tests
compare it with), in milliseconds instead of tenths of a second, handed to ``highspy``. What the
strategic loop changes between solves, bid prices (objective coefficients), bid quantities
(column bounds) and the grid state (right-hand sides), is changed in place in HiGHS, which
warm-starts from the previous basis. No Pyomo model is rebuilt inside a loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from flexgame.markets.errors import SolverError

INF = highspy.kHighsInf

DUAL_FEASIBILITY_TOLERANCE = 1e-9
"""HiGHS's tolerance on reduced costs [EUR/MW] (its default is 1e-7): far below the tie-break
step between equally priced bids (:data:`flexgame.markets.ties.TIE_BREAK_EUR_PER_MW`, 1e-6),
so that the step decides which of them clears whatever basis the solve starts from; at 1e-7
a warm start could keep a basis that ignores the step by a fraction of a MW."""


class _SilentHighs(highspy.Highs):
    """``highspy.Highs`` with its console output switched off before it starts: highspy's
    constructor enables callbacks, and HiGHS prints its banner ("Running HiGHS ...") on
    stdout then, once per process, unless ``output_flag`` is already off."""

    def enableCallbacks(self):
        self.setOptionValue("output_flag", False)
        super().enableCallbacks()


@dataclass(frozen=True)
class LPSolution:
    """Result of one solve.

    Attributes:
        optimal: HiGHS reported an optimal solution.
        status: HiGHS's model status (``"Optimal"``, ``"Infeasible"``, ...).
        objective: objective value (including any penalty terms).
        x: column values.
        row_dual: row duals (HiGHS sign convention: d = c - A^T y).
        reduced_cost: column duals d.
    """

    optimal: bool
    status: str
    objective: float
    x: np.ndarray
    row_dual: np.ndarray
    reduced_cost: np.ndarray

    def require_optimal(self, what: str) -> LPSolution:
        """This solution, or :class:`SolverError` naming ``what`` was solved when it is not
        optimal (its numbers would not be the model's)."""
        if not self.optimal:
            raise SolverError(f"{what}: HiGHS returned no optimal solution (model status "
                              f"{self.status})")
        return self


def _per_entry(values, n: int) -> np.ndarray:
    """``values`` (a scalar or n values) as n contiguous floats."""
    a = np.asarray(values, dtype=float)
    return np.full(n, float(a)) if a.ndim == 0 else np.ascontiguousarray(a)


def _checked(status, change: str) -> None:
    """Raise :class:`SolverError` when HiGHS refused a model change (its old data would
    stay, and the next solve would answer another question)."""
    if status != highspy.HighsStatus.kOk:
        raise SolverError(f"HiGHS refused to change {change} ({status.name})")


def _finite(values: np.ndarray, what: str, infinite_ok: bool = False) -> np.ndarray:
    """``values``, or :class:`SolverError` when one is NaN (or infinite, unless
    ``infinite_ok``): HiGHS accepts a NaN cost silently and refuses a NaN bound, and
    neither is a market's data."""
    bad = np.isnan(values) if infinite_ok else ~np.isfinite(values)
    if bad.any():
        raise SolverError(f"{what} {values[bad][0]} is not a number the LP can take "
                          f"(position {int(np.flatnonzero(bad)[0])})")
    return values


class CompiledLP:
    """A persistent HiGHS model with named access to columns and rows.

    Build with :meth:`from_pyomo` (clearing models) or :meth:`from_arrays` (dense models built
    from sensitivities). Columns and rows are addressed by integer positions; ``col`` /
    ``row`` translate Pyomo components into positions.
    """

    def __init__(self, cost, a_matrix: sp.csc_matrix, row_lower, row_upper, col_lower,
                 col_upper, integer_cols=(), offset: float = 0.0):
        self.n_cols, self.n_rows = len(cost), a_matrix.shape[0]
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n_cols, self.n_rows
        lp.col_cost_ = np.asarray(cost, dtype=float)
        lp.col_lower_ = np.asarray(col_lower, dtype=float)
        lp.col_upper_ = np.asarray(col_upper, dtype=float)
        lp.row_lower_ = np.asarray(row_lower, dtype=float)
        lp.row_upper_ = np.asarray(row_upper, dtype=float)
        lp.offset_ = float(offset)
        a = sp.csc_matrix(a_matrix)
        a.sort_indices()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data.astype(float)
        self.highs = _SilentHighs()
        self.highs.setOptionValue("dual_feasibility_tolerance", DUAL_FEASIBILITY_TOLERANCE)
        self.highs.passModel(lp)
        integer_cols = np.asarray(integer_cols, dtype=np.int32)
        if len(integer_cols):
            self.highs.changeColsIntegrality(
                len(integer_cols), integer_cols,
                np.array([highspy.HighsVarType.kInteger] * len(integer_cols)),
            )
        self.n_integer = len(integer_cols)
        self._col_pos: dict[int, int] = {}
        self._row_pos: dict[int, int] = {}
        self.cost = np.asarray(cost, dtype=float).copy()
        self.a_matrix = a
        # the data HiGHS holds, kept in step by the set_* methods
        self.col_lower, self.col_upper = (np.array(v, dtype=float) for v in (col_lower, col_upper))
        self.row_lower, self.row_upper = (np.array(v, dtype=float) for v in (row_lower, row_upper))

    def __repr__(self) -> str:
        integer = f", {self.n_integer} integer" if self.n_integer else ""
        return (f"CompiledLP({self.n_rows} rows x {self.n_cols} columns, "
                f"{self.a_matrix.nnz} nonzeros{integer})")

    def relaxation(self) -> "CompiledLP":
        """A new model with this one's current data and no integer columns (its LP
        relaxation)."""
        return CompiledLP(self.cost, self.a_matrix, self.row_lower, self.row_upper,
                          self.col_lower, self.col_upper)

    @classmethod
    def from_arrays(cls, cost, a_matrix, row_lower, row_upper, col_lower, col_upper,
                    integer_cols=()) -> "CompiledLP":
        """A minimisation LP (or MILP) min c x, row_lower <= A x <= row_upper, bounds on x."""
        return cls(cost, sp.csc_matrix(a_matrix), row_lower, row_upper, col_lower, col_upper,
                   integer_cols)

    @classmethod
    def from_pyomo(cls, model) -> "CompiledLP":
        """Compile a Pyomo model (a ``ConcreteModel``) with one minimising objective.
        Variables must not be fixed; a constraint that should change its right-hand side
        later must be a plain equality or a one-sided inequality (one row). The clearing
        models are assembled directly (:mod:`flexgame.markets.lp_builder`), the same LP
        without Pyomo's cost; this compiles their Pyomo formulation for the tests."""
        import pyomo.environ as pyo
        from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

        repn = LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=None)
        (objective,) = repn.objectives
        if objective.sense != pyo.minimize:
            raise ValueError("CompiledLP needs a minimising objective")
        rhs = np.asarray(repn.rhs, dtype=float)
        kind = np.array([r.bound_type for r in repn.rows])
        row_lower = np.where(kind == 1, -INF, rhs)
        row_upper = np.where(kind == -1, INF, rhs)
        cols = repn.columns
        col_lower = np.array([-INF if v.lb is None else v.lb for v in cols], dtype=float)
        col_upper = np.array([INF if v.ub is None else v.ub for v in cols], dtype=float)
        integer = [i for i, v in enumerate(cols) if v.is_integer() or v.is_binary()]
        offset = float(np.asarray(repn.c_offset).ravel()[0]) if np.size(repn.c_offset) else 0.0
        lp = cls(np.asarray(repn.c.todense()).ravel(), sp.csc_matrix(repn.A), row_lower,
                 row_upper, col_lower, col_upper, integer, offset)
        lp._col_pos = {id(v): i for i, v in enumerate(cols)}
        for i, r in enumerate(repn.rows):
            lp._row_pos.setdefault(id(r.constraint), i)
        return lp

    # --- addressing -------------------------------------------------------------------
    def col(self, var) -> int:
        """Column position of a scalar Pyomo variable."""
        return self._col_pos[id(var)]

    def cols(self, indexed_var, keys=None) -> np.ndarray:
        """Column positions of an indexed Pyomo variable, in ``keys`` order (default: its
        index order)."""
        keys = list(indexed_var.keys()) if keys is None else keys
        return np.array([self._col_pos[id(indexed_var[k])] for k in keys], dtype=np.int32)

    def row(self, con) -> int:
        """Row position of a scalar Pyomo constraint."""
        return self._row_pos[id(con)]

    def rows(self, indexed_con, keys=None) -> np.ndarray:
        """Row positions of an indexed Pyomo constraint, in ``keys`` order (default: its
        index order)."""
        keys = list(indexed_con.keys()) if keys is None else keys
        return np.array([self._row_pos[id(indexed_con[k])] for k in keys], dtype=np.int32)

    # --- data changes -----------------------------------------------------------------
    def set_costs(self, cols: np.ndarray, values) -> None:
        """Objective coefficients of columns ``cols``."""
        values = _finite(np.asarray(values, dtype=float), "cost")
        _checked(self.highs.changeColsCost(len(cols), np.asarray(cols, dtype=np.int32), values),
                 "costs")
        self.cost[cols] = values

    def set_col_bounds(self, cols: np.ndarray, lower, upper) -> None:
        """Bounds of columns ``cols`` (scalars or one value per column)."""
        cols = np.asarray(cols, dtype=np.int32)
        lower = _finite(_per_entry(lower, len(cols)), "column lower bound", infinite_ok=True)
        upper = _finite(_per_entry(upper, len(cols)), "column upper bound", infinite_ok=True)
        _checked(self.highs.changeColsBounds(len(cols), cols, lower, upper), "column bounds")
        self.col_lower[cols], self.col_upper[cols] = lower, upper

    def set_row_bounds(self, rows: np.ndarray, lower, upper) -> None:
        """Bounds (right-hand sides) of rows ``rows`` (scalars or one value per row)."""
        rows = np.asarray(rows, dtype=np.int32)
        lower = _finite(_per_entry(lower, len(rows)), "row lower bound", infinite_ok=True)
        upper = _finite(_per_entry(upper, len(rows)), "row upper bound", infinite_ok=True)
        _checked(self.highs.changeRowsBounds(len(rows), rows, lower, upper), "row bounds")
        self.row_lower[rows], self.row_upper[rows] = lower, upper

    def set_row_bound(self, row: int, lower: float, upper: float) -> None:
        """Bounds of one row: :meth:`set_row_bounds` without arrays, for the one number that
        changes between the steps of a sweep."""
        _finite(np.array([lower, upper]), f"bound of row {row}", infinite_ok=True)
        _checked(self.highs.changeRowBounds(int(row), float(lower), float(upper)), "row bounds")
        self.row_lower[row], self.row_upper[row] = lower, upper

    def set_quadratic(self, cols: np.ndarray, weights) -> None:
        """Make the objective c x + 1/2 sum_j w_j x_j^2 over columns ``cols`` (a diagonal
        Hessian, weights >= 0, replacing any previous one; HiGHS then solves a convex QP)."""
        cols = np.asarray(cols, dtype=np.int32)
        order = np.argsort(cols)
        hessian = highspy.HighsHessian()
        hessian.dim_ = self.n_cols
        hessian.format_ = highspy.HessianFormat.kTriangular
        per_col = np.zeros(self.n_cols, dtype=np.int32)
        per_col[cols] = 1
        hessian.start_ = np.r_[0, np.cumsum(per_col)].astype(np.int32)
        hessian.index_ = cols[order]
        hessian.value_ = np.asarray(weights, dtype=float)[order]
        _checked(self.highs.passHessian(hessian), "the quadratic objective")

    # --- solve --------------------------------------------------------------------------
    def solve(self) -> LPSolution:
        """Solve from the current basis (warm start); once more from scratch if that is not
        optimal."""
        self.highs.run()
        status = self.highs.getModelStatus()
        optimal = status == highspy.HighsModelStatus.kOptimal
        if not optimal:
            # a warm start can stall on a changed model: retry once from scratch
            self.highs.clearSolver()
            self.highs.run()
            status = self.highs.getModelStatus()
            optimal = status == highspy.HighsModelStatus.kOptimal
        sol = self.highs.getSolution()
        return LPSolution(
            optimal=optimal,
            status=self.highs.modelStatusToString(status),
            objective=float(self.highs.getObjectiveValue()),
            x=np.asarray(sol.col_value, dtype=float),
            row_dual=np.asarray(sol.row_dual, dtype=float),
            reduced_cost=np.asarray(sol.col_dual, dtype=float),
        )

    def cost_ranges(self, cols: np.ndarray, reduced_cost: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """For columns ``cols``, objective coefficients (lower, upper) strictly between which
        the basis of the last optimal solve stays optimal, so that its solution x stays the
        same, whatever the coefficients of the other listed columns do within theirs.

        A nonbasic column keeps its basis optimal while its reduced cost d_j = c_j - a_j^T y
        keeps its sign (y depends only on the basic columns' costs): at its lower bound for
        c_j > c_j - d_j, at its upper bound for c_j < c_j - d_j. This is HiGHS's cost
        ranging of nonbasic columns, and it holds for several of them at once. A basic
        column gets the empty range (c_j, c_j): its range needs a ratio test over the
        basis, which costs more than solving again (Bradley, Hax & Magnanti, "Applied
        Mathematical Programming", 1977, §3.4 and §3.6). ``reduced_cost``: the last
        solve's column duals, all columns. Valid only right after an optimal
        :meth:`solve`."""
        cols = np.asarray(cols, dtype=np.int64)
        basis = self.highs.getBasis().col_status
        status = np.array([int(basis[c]) for c in cols], dtype=np.int64)
        cost, d = self.cost[cols], np.asarray(reduced_cost, dtype=float)[cols]
        lower, upper = cost.copy(), cost.copy()
        at_lower = status == int(highspy.HighsBasisStatus.kLower)
        at_upper = status == int(highspy.HighsBasisStatus.kUpper)
        lower[at_lower], upper[at_lower] = (cost - d)[at_lower], INF
        lower[at_upper], upper[at_upper] = -INF, (cost - d)[at_upper]
        return lower, upper

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Current (col_lower, col_upper, row_lower, row_upper)."""
        lp = self.highs.getLp()
        return (np.asarray(lp.col_lower_), np.asarray(lp.col_upper_),
                np.asarray(lp.row_lower_), np.asarray(lp.row_upper_))
