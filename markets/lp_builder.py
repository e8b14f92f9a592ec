"""The clearing models assembled directly as arrays, the same LP as their Pyomo formulation.

:mod:`flexgame.markets.constraints` writes each group of constraints in Pyomo, close to the
maths; compiling such a model with Pyomo's ``LinearStandardFormCompiler`` costs 0.1-0.3 s per
market layer (expression objects for every term), against a few ms per re-solve. The
functions here build the same rows with numpy in a few ms: :class:`LPBuilder` lays out the
columns and rows exactly as the compiler does, so the :class:`~flexgame.markets.lp.CompiledLP`
is the same, column for column, row for row and bit for bit (tests compare both for every
layer of every scheme), and so is every clearing.

The compiler's layout, which :class:`LPBuilder` follows:

* columns: a variable component enters when one of its entries is first met walking the
  objective, then the constraints in row order (each row's terms in the order of its
  expression); it enters whole, in its index order. Columns with no nonzero in the
  objective or the matrix are then dropped.
* rows: the model's constraints in declaration order, then those of each block (in block
  order); a constraint without variables is dropped. An equality is one row with both bounds
  at its right-hand side, an inequality one row with the other bound infinite.
* zero coefficients are dropped from the matrix and the objective (``0 x a`` in an objective
  only puts the column in its place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

INF = float("inf")  # highspy.kHighsInf


@dataclass
class _Group:
    name: str
    n: int
    lower: np.ndarray
    upper: np.ndarray
    integer: bool


@dataclass
class _Terms:
    """Terms of one variable group in a row block (or the objective, row 0): entry e puts
    ``coef[e]`` on variable ``idx[e]`` in row ``row[e]``."""

    group: int
    row: np.ndarray
    idx: np.ndarray
    coef: np.ndarray


@dataclass
class _Block:
    name: str
    n_rows: int
    terms: list[_Terms]
    lower: np.ndarray
    upper: np.ndarray
    sub_block: int | None


def _array(values, n: int, dtype=float) -> np.ndarray:
    a = np.asarray(values, dtype=dtype)
    return np.full(n, a, dtype=dtype) if a.ndim == 0 else a


class LPBuilder:
    """Columns, objective and rows of a minimising LP, in groups, compiled to a
    :class:`~flexgame.markets.lp.CompiledLP` laid out as Pyomo's standard-form compiler lays
    out the same model (see the module docstring).

    Variable groups are the Pyomo variable components (``var``), row blocks its constraint
    components (``rows``, in the compiler's row order); the terms of a row are given as
    arrays per variable group, in the order they appear in the row's expression.
    """

    def __init__(self):
        self._groups: list[_Group] = []
        self._objective: list[_Terms] = []
        self._blocks: list[_Block] = []

    def var(self, name: str, n: int, lower=-INF, upper=INF, integer: bool = False) -> int:
        """A variable group of ``n`` entries with bounds (scalars or per entry); returns its
        handle."""
        self._groups.append(_Group(name, n, _array(lower, n), _array(upper, n), integer))
        return len(self._groups) - 1

    def cost(self, group: int, idx, coef) -> None:
        """Objective terms coef[e] x group[idx[e]], after those already added."""
        idx = np.asarray(idx, dtype=np.int64)
        self._objective.append(_Terms(group, np.zeros(len(idx), dtype=np.int64), idx,
                                      _array(coef, len(idx))))

    def rows(self, name: str, n_rows: int, terms, lower, upper,
             sub_block: int | None = None) -> None:
        """A block of ``n_rows`` rows lower <= sum of terms <= upper (equal bounds: an
        equality). ``terms``: (group, row, idx, coef) per variable group, in the order the
        groups appear in each row's expression (row and idx arrays, coef an array or a
        scalar). Blocks come in the order they are added, those of the model first, then
        those of each sub-block (a Pyomo ``Block`` of the model, by its number)."""
        block = []
        for group, row, idx, coef in terms:
            row = np.asarray(row, dtype=np.int64)
            block.append(_Terms(group, row, np.asarray(idx, dtype=np.int64),
                                _array(coef, len(row))))
        self._blocks.append(_Block(name, n_rows, block, _array(lower, n_rows),
                                   _array(upper, n_rows), sub_block))

    def compile(self):
        """(the CompiledLP, column positions per group name, row positions per block name);
        a dropped column or row is at position -1."""
        from flexgame.markets.lp import CompiledLP

        blocks = sorted(self._blocks,
                        key=lambda b: -1 if b.sub_block is None else b.sub_block)  # stable
        # rows: drop those without terms; global numbering in block order
        kept_rows, n_rows = {}, 0
        for b in blocks:
            count = np.zeros(b.n_rows, dtype=np.int64)
            for t in b.terms:
                np.add.at(count, t.row, 1)
            keep = count > 0
            pos = np.full(b.n_rows, -1, dtype=np.int64)
            pos[keep] = n_rows + np.arange(int(keep.sum()))
            kept_rows[b.name] = pos
            n_rows += int(keep.sum())
        # columns: groups in order of first appearance (objective, then each block's rows,
        # each row's terms in expression order)
        order: list[int] = []
        seen = set()

        def meet(groups):
            for g in groups:
                if g not in seen:
                    seen.add(g)
                    order.append(g)

        meet(t.group for t in self._objective if len(t.idx))
        for b in blocks:
            # within a block, a group is first met in its earliest row (ties: the term that
            # comes first in the expression)
            first = {}
            for k, t in enumerate(b.terms):
                if len(t.row):
                    key = (int(t.row.min()), k)
                    first[t.group] = min(first.get(t.group, key), key)
            meet(sorted(first, key=first.get))
        offset, n_cols = {}, 0
        for g in order:
            offset[g] = n_cols
            n_cols += self._groups[g].n
        # objective and matrix over these columns, zeros dropped
        cost = np.zeros(n_cols)
        for t in self._objective:
            if len(t.idx):
                np.add.at(cost, offset[t.group] + t.idx, t.coef)
        rows, cols, data = [], [], []
        for b in blocks:
            pos = kept_rows[b.name]
            for t in b.terms:
                if not len(t.row):
                    continue
                rows.append(pos[t.row])
                cols.append(offset[t.group] + t.idx)
                data.append(t.coef)
        rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        data = np.concatenate(data) if data else np.zeros(0)
        nonzero = data != 0
        rows, cols, data = rows[nonzero], cols[nonzero], data[nonzero]
        active = np.zeros(n_cols, dtype=bool)
        active[cols] = True
        active[cost != 0] = True
        new = np.cumsum(active) - 1
        new[~active] = -1
        n_active = int(active.sum())
        a_matrix = sp.csc_matrix((data, (rows, new[cols])), shape=(n_rows, n_active))
        if a_matrix.nnz != len(data):  # the conversion summed entries of one (row, column)
            raise ValueError("LPBuilder: a variable appears twice in a row")
        a_matrix.sort_indices()
        col_lower = np.empty(n_cols)
        col_upper = np.empty(n_cols)
        integer = np.zeros(n_cols, dtype=bool)
        for g in order:
            grp, s = self._groups[g], offset[g]
            col_lower[s:s + grp.n], col_upper[s:s + grp.n] = grp.lower, grp.upper
            integer[s:s + grp.n] = grp.integer
        row_lower = np.concatenate([b.lower[kept_rows[b.name] >= 0] for b in blocks]) \
            if blocks else np.zeros(0)
        row_upper = np.concatenate([b.upper[kept_rows[b.name] >= 0] for b in blocks]) \
            if blocks else np.zeros(0)
        lp = CompiledLP(cost[active], a_matrix, row_lower, row_upper, col_lower[active],
                        col_upper[active], np.flatnonzero(integer[active]), 0.0)
        col_pos = {}
        for g, grp in enumerate(self._groups):
            col_pos[grp.name] = (new[offset[g]:offset[g] + grp.n] if g in offset
                                 else np.full(grp.n, -1, dtype=np.int64))
        return lp, col_pos, kept_rows


def positions(found: np.ndarray, what: str) -> np.ndarray:
    """``found`` as int32 positions, refusing dropped ones (-1) as Pyomo's lookup would."""
    if np.any(found < 0):
        raise KeyError(f"{what}: a column or row was dropped from the LP (no coefficient)")
    return found.astype(np.int32)


# --- the constraints of flexgame.markets.constraints, as arrays ------------------------------
# Each function adds the variables and rows its Pyomo twin ``add_*`` declares, in the same
# order with the same coefficients, and returns the twin's penalty as objective terms
# (group, idx, coef), for the caller to add to the objective in the twin's order. ``net_up``
# arguments are terms (group, idx, coef) of the net upward activation sum_b sign_b a_b (or
# its reactive counterpart), in expression order.

def tso_balance(b: LPBuilder, net_up, penalties) -> list:
    """Twin of :func:`flexgame.markets.constraints.add_tso_balance`: the row ``balance``."""
    up = b.var("unmet_up", 1, 0.0, INF)
    down = b.var("unmet_down", 1, 0.0, INF)
    zero = np.zeros(1, dtype=np.int64)
    terms = [(g, np.zeros(len(idx), dtype=np.int64), idx, coef) for g, idx, coef in net_up]
    b.rows("balance", 1, [*terms, (up, zero, zero, 1.0), (down, zero, zero, -1.0)], 0.0, 0.0)
    return [(up, zero, penalties.unmet_need), (down, zero, penalties.unmet_need)]


def ptdf_limits(b: LPBuilder, transmission, injection, penalties) -> list:
    """Twin of :func:`flexgame.markets.constraints.add_ptdf_limits`: rows ``inj_def``,
    ``line_max``, ``line_min``. ``injection``: terms (group, bus position, idx, coef) of the
    change of injection at each bus, in expression order."""
    ptdf = transmission.ptdf
    n_bus, n_line = len(transmission.buses), transmission.n_lines
    dinj = b.var("dinj", n_bus)
    slack = b.var("line_slack", n_line, 0.0, INF)
    buses, lines = np.arange(n_bus), np.arange(n_line)
    b.rows("inj_def", n_bus,
           [(dinj, buses, buses, 1.0), *((g, bus, idx, -np.asarray(coef, dtype=float))
                                         for g, bus, idx, coef in injection)], 0.0, 0.0)
    ll, nn = np.nonzero(np.abs(ptdf) > 1e-10)
    coef = ptdf[ll, nn]
    b.rows("line_max", n_line, [(dinj, ll, nn, coef), (slack, lines, lines, -1.0)], -INF, 0.0)
    b.rows("line_min", n_line, [(dinj, ll, nn, -coef), (slack, lines, lines, -1.0)], -INF, 0.0)
    return [(slack, lines, penalties.line)]


def load_line_headroom(lp, transmission, tx_injection: np.ndarray, line_max: np.ndarray,
                       line_min: np.ndarray) -> None:
    """Set the data of the rows ``line_max`` and ``line_min`` of :func:`ptdf_limits` in a
    compiled ``lp`` for the base injections ``tx_injection`` [MW per bus]: the change of
    each line's flow may reach rating - f0 upward and rating + f0 downward [MW], f0 the base
    flow."""
    f0 = transmission.flows(tx_injection)
    lp.set_row_bounds(line_max, -INF, transmission.rating_mw - f0)
    lp.set_row_bounds(line_min, -INF, transmission.rating_mw + f0)


def grouped(at: list[list[int]], rows) -> tuple[np.ndarray, np.ndarray]:
    """(row, position) of every position listed in ``at[j]`` for j in ``rows`` (row k for
    rows[k]), row by row."""
    lists = [at[j] for j in rows]
    row = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    return row, np.fromiter((i for x in lists for i in x), dtype=np.int64, count=len(row))


def lindistflow(b: LPBuilder, block: int, feeder, a: int, sign: np.ndarray,
                tan_phi: np.ndarray, at_bus: list[list[int]], angles: np.ndarray,
                shrink: float, penalties) -> list:
    """Twin of :func:`flexgame.markets.constraints.add_lindistflow` on sub-block ``block``
    (its variables are named ``feeder[block].*``); ``a`` is the group of the bids'
    activations, ``sign`` and ``tan_phi`` per position."""
    f, pre = feeder, f"feeder[{block}]."
    n_k, n_j = f.n_branches, f.n_buses
    P, Q = b.var(pre + "P", n_k), b.var(pre + "Q", n_k)
    v = b.var(pre + "v", n_j)
    v_low, v_high = b.var(pre + "v_low", n_j, 0.0, INF), b.var(pre + "v_high", n_j, 0.0, INF)
    s_over = b.var(pre + "s_over", n_k, 0.0, INF)
    child = np.asarray(f.child, dtype=np.int64)
    n_c = len(child)
    rows = np.arange(n_c)
    branch = np.asarray(f.branch_of, dtype=np.int64)[child]
    children = [[] for _ in range(n_j)]
    for k, j in enumerate(child):
        children[f.parent[j]].append(k)
    out_row, out_k = grouped(children, child)
    bid_row, bid_pos = grouped(at_bus, child)
    zero = np.zeros(n_c)
    b.rows(pre + "p_balance", n_c, [(P, rows, branch, 1.0), (P, out_row, out_k, -1.0),
                                    (a, bid_row, bid_pos, sign[bid_pos])], zero, zero, block)
    b.rows(pre + "q_balance", n_c, [(Q, rows, branch, 1.0), (Q, out_row, out_k, -1.0),
                                    (a, bid_row, bid_pos, sign[bid_pos] * tan_phi[bid_pos])],
           zero, zero, block)
    ks = np.arange(n_k)
    s_base = f.base_mva
    r, x = np.asarray(f.r_pu, dtype=float), np.asarray(f.x_pu, dtype=float)
    # Pyomo folds 2 * (r P + x Q) / s_base into the multiplier 2 / s_base of r and x
    b.rows(pre + "drop", n_k, [(v, ks, child, 1.0), (v, ks, np.asarray(f.parent)[child], -1.0),
                               (P, ks, ks, r * (2 / s_base)), (Q, ks, ks, x * (2 / s_base))],
           0.0, 0.0, block)
    zero1 = np.zeros(1, dtype=np.int64)
    b.rows(pre + "v_root", 1, [(v, zero1, zero1, 1.0)], f.v0_sq, f.v0_sq, block)
    js = np.arange(n_j)
    v_min = np.array([float(x) ** 2 for x in f.v_min])
    v_max = np.array([float(x) ** 2 for x in f.v_max])
    b.rows(pre + "v_min", n_j, [(v, js, js, 1.0), (v_low, js, js, 1.0)], v_min, INF, block)
    b.rows(pre + "v_max", n_j, [(v, js, js, 1.0), (v_high, js, js, -1.0)], -INF, v_max, block)
    n_s = len(angles)
    sk = np.repeat(ks, n_s)
    ss = np.tile(np.arange(n_s), n_k)
    srows = np.arange(n_k * n_s)
    cos, sin = np.cos(angles), np.sin(angles)
    rating = np.array([shrink * float(x) for x in f.rating_mva])
    b.rows(pre + "s_limit", n_k * n_s, [(P, srows, sk, cos[ss]), (Q, srows, sk, sin[ss]),
                                        (s_over, srows, sk, -1.0)], -INF, rating[sk], block)
    return [(s_over, ks, penalties.line),
            (v_low, js, penalties.voltage), (v_high, js, penalties.voltage)]


def interface_limit(b: LPBuilder, block: int, a: int, sign: np.ndarray, local: np.ndarray,
                    penalties) -> list:
    """Twin of :func:`flexgame.markets.constraints.add_interface_limit` on sub-block
    ``block``: rows ``interface_max``, ``interface_min`` over the bids at ``local``."""
    pre = f"feeder[{block}]."
    over = b.var(pre + "interface_over", 1, 0.0, INF)
    local = np.asarray(local, dtype=np.int64)
    zero, row = np.zeros(1, dtype=np.int64), np.zeros(len(local), dtype=np.int64)
    b.rows(pre + "interface_max", 1, [(a, row, local, -sign[local]), (over, zero, zero, -1.0)],
           -INF, 0.0, block)
    b.rows(pre + "interface_min", 1, [(a, row, local, sign[local]), (over, zero, zero, -1.0)],
           -INF, 0.0, block)
    return [(over, zero, penalties.line)]


def held_interfaces(b: LPBuilder, a: int, sign: np.ndarray, members: list[np.ndarray],
                    penalties) -> list:
    """Twin of :func:`flexgame.markets.constraints.add_held_interfaces`: rows ``held``."""
    n_h = len(members)
    up, down = b.var("iface_up", n_h, 0.0, INF), b.var("iface_down", n_h, 0.0, INF)
    hs = np.arange(n_h)
    row, pos = grouped([list(m) for m in members], hs)
    b.rows("held", n_h, [(a, row, pos, sign[pos]), (up, hs, hs, 1.0), (down, hs, hs, -1.0)],
           0.0, 0.0)
    # sum_h (iface_up[h] + iface_down[h]): up[0], down[0], up[1], ...
    return [(up, hs, penalties.interface), (down, hs, penalties.interface)]
