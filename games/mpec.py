"""Exact MPEC best response in a single-LP market under pay-as-bid (cross-check of the
grid search).

The leader (FSP i) picks one markup k of the grid for all its bids; the follower (the
market operator) clears the LP  min c'x  s.t.  L <= A x <= U,  l <= x <= u,  where the
columns J_i of i's bids cost P[b, k] (declared price under markup k). Replacing the follower
by primal feasibility, dual feasibility and strong duality (Fortuny-Amat & McCarl 1981;
Ruiz & Conejo, IEEE Trans. Power Syst. 24(4), 2009, for the strong-duality form) gives a
MILP: binaries y_k pick the markup; the products P[b, k] y_k x_b are linearised exactly
with w_bk = y_k x_b (McCormick envelopes are exact for a binary times a bounded variable):

    max  sum_b sum_k P[b,k] w_bk - sum_b c_b x_b                     (i's profit)
    s.t. L <= A x <= U,  l <= x <= u                                  (primal)
         A_j'(alpha - beta) + gamma_j - delta_j = c_j          j not in J_i
         A_b'(alpha - beta) + gamma_b - delta_b = sum_k P[b,k] y_k    b in J_i    (dual)
         c'x (with w for J_i) = L'alpha - U'beta + l'gamma - u'delta  (strong duality)
         sum_k y_k = 1,  w_bk <= u_b y_k,  w_bk <= x_b,  w_bk >= x_b - u_b (1 - y_k)

Ties among the follower's optimal solutions are resolved in the leader's favour (the
optimistic bilevel solution); on instances with a unique follower optimum it equals the
grid best response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from flexgame.games.payoff import GameEvaluator
from flexgame.games.strategies import Strategy
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.lp import CompiledLP
from flexgame.markets.market_layer import tie_break


@dataclass(frozen=True)
class MPECResult:
    """Best markup index of the FSP and its profit [EUR] at the MILP optimum."""

    strategy: Strategy
    profit_eur: float
    optimal: bool


def mpec_best_response(evaluator: GameEvaluator, profile: dict[str, Strategy],
                       fsp: str) -> MPECResult:
    """Exact best response of player ``fsp`` by the MPEC MILP (common market, pay-as-bid,
    markup-only strategy space). A player pricing one resource of a larger FSP maximises the
    whole FSP's profit: the FSP's other bids, at their fixed prices, add their margin."""
    scheme, space = evaluator.scheme, evaluator.bid_map.space
    if scheme.name != "common" or evaluator.settlement != "pay_as_bid":
        raise FlexgameInputError("the MPEC best response needs scheme=common, settlement=pay_as_bid")
    if len(space.withholding) != 1 or space.reprice_forwarded:
        raise FlexgameInputError("the MPEC best response covers markup-only strategy spaces")
    price, quantity, _ = evaluator.bid_map.declare(profile)
    layer = scheme.common
    layer.solve(price, quantity, scheme.base_state, scheme.system.tso_need_mw)
    lp = layer.lp
    a = lp.a_matrix.tocsc()
    c = lp.cost.copy()
    col_l, col_u, row_l, row_u = lp.bounds()
    n, m = lp.n_cols, lp.n_rows
    rows_i = evaluator.bid_map.rows[fsp]
    cols_i = layer.a_cols[np.searchsorted(layer.candidates, rows_i)]
    true_cost = evaluator.bid_map.cost[rows_i]
    p = np.array([[space.price(np.array([cb]), k)[0] for k in range(len(space.markups))]
                  for cb in true_cost])  # bids x markups
    # the follower sees the layer's tie-break on i's prices too, so its optimum (and hence
    # the MILP's follower response) is the one the clearing itself returns
    p_follower = p + tie_break(rows_i)[:, None]
    n_i, n_k = len(cols_i), len(space.markups)
    fin = np.isfinite
    ra, rb = np.flatnonzero(fin(row_l)), np.flatnonzero(fin(row_u))
    cg, cd = np.flatnonzero(fin(col_l)), np.flatnonzero(fin(col_u))
    # variable blocks: x | alpha | beta | gamma | delta | y | w (bid-major)
    sizes = [n, len(ra), len(rb), len(cg), len(cd), n_k, n_i * n_k]
    off = np.cumsum([0] + sizes)
    n_var = off[-1]

    def block(i):
        return np.arange(off[i], off[i + 1])

    x, al, be, ga, de, y, w = (block(i) for i in range(7))
    cons, lo, hi = [], [], []

    def add(mat, lower, upper):
        cons.append(sp.csr_matrix(mat))
        lo.append(np.broadcast_to(np.asarray(lower, dtype=float), mat.shape[0]))
        hi.append(np.broadcast_to(np.asarray(upper, dtype=float), mat.shape[0]))

    def place(rows_count, entries):
        """Sparse rows x n_var from (row, col, value) triples."""
        r, col, v = (np.concatenate([np.asarray(e[i], dtype=float if i == 2 else int)
                                     for e in entries]) for i in range(3))
        return sp.csr_matrix((v, (r, col)), shape=(rows_count, n_var))

    # primal rows
    ac = a.tocoo()
    add(place(m, [(ac.row, x[ac.col], ac.data)]), row_l, row_u)
    # dual feasibility: A'(alpha - beta) + gamma - delta - [P y for J_i] = c (0 for J_i)
    at = a.T.tocsr()
    ar = at[:, ra].tocoo()
    brm = at[:, rb].tocoo()
    entries = [(ar.row, al[ar.col], ar.data), (brm.row, be[brm.col], -brm.data),
               (cg, ga, np.ones(len(cg))), (cd, de, -np.ones(len(cd)))]
    rhs = c.copy()
    for bi, j in enumerate(cols_i):
        entries.append((np.full(n_k, j), y, -p_follower[bi]))
        rhs[j] = 0.0
    add(place(n, entries), rhs, rhs)
    # strong duality
    c_other = c.copy()
    c_other[cols_i] = 0.0
    sd = [(np.zeros(n), x, c_other), (np.zeros(n_i * n_k, int), w, p_follower.ravel()),
          (np.zeros(len(ra), int), al, -row_l[ra]), (np.zeros(len(rb), int), be, row_u[rb]),
          (np.zeros(len(cg), int), ga, -col_l[cg]), (np.zeros(len(cd), int), de, col_u[cd])]
    add(place(1, sd), -np.inf, 0.0)
    # one markup
    add(place(1, [(np.zeros(n_k, int), y, np.ones(n_k))]), 1.0, 1.0)
    # McCormick
    ub = col_u[cols_i]
    r = np.arange(n_i * n_k)
    b_of, k_of = r // n_k, r % n_k
    add(place(len(r), [(r, w, np.ones(len(r))), (r, y[k_of], -ub[b_of])]), -np.inf, 0.0)
    add(place(len(r), [(r, w, np.ones(len(r))), (r, x[cols_i[b_of]], -np.ones(len(r)))]), -np.inf, 0.0)
    add(place(len(r), [(r, w, np.ones(len(r))), (r, x[cols_i[b_of]], -np.ones(len(r))),
                       (r, y[k_of], -ub[b_of])]), -ub[b_of], np.inf)
    cost = np.zeros(n_var)
    cost[w] = -p.ravel()
    cost[x[cols_i]] = true_cost
    bm = evaluator.bid_map
    rows_o = np.setdiff1d(bm.fsp_rows[bm.owner[fsp]], rows_i)
    cols_o = layer.a_cols[np.searchsorted(layer.candidates, rows_o)]
    cost[x[cols_o]] = bm.cost[rows_o] - price[rows_o]
    var_l = np.zeros(n_var)
    var_u = np.full(n_var, np.inf)
    var_l[x], var_u[x] = col_l, col_u
    var_u[y] = 1.0
    milp = CompiledLP.from_arrays(cost, sp.vstack(cons).tocsc(), np.concatenate(lo),
                                  np.concatenate(hi), var_l, var_u, integer_cols=y)
    sol = milp.solve()
    k = int(np.argmax(sol.x[y])) if sol.optimal else profile[fsp][0]
    return MPECResult(space.uniform(k), -sol.objective if sol.optimal else float("nan"), sol.optimal)
