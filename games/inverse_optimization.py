"""Inverse optimisation (IO) of a flexibility curve from (price, demand) samples.

flexgame's IDR reference §2 (last paragraph) and issue 13, item 4, after Saez-Gallego, Morales,
Zugno & Madsen, "A Data-Driven Bidding Model for a Cluster of Price-Responsive Consumers of
Electricity", IEEE Trans. Power Syst. 31(6), 2016: given samples m = 1..M of a retail price
signal lambda_m [EUR/MWh], the observed demand of the implicit DR P_m [MW] and weights
omega_m >= 0, choose the curve (:class:`~flexgame.markets.flexibility_curve.FlexibilityCurve`:
Pmin, Pmax, w_1 >= ... >= w_N) that minimises

    sum_m omega_m rho(P_m - D_m),   D_m = Pmin + e k_m,  e = (Pmax - Pmin) / N,
    k_m = #{b : w_b > lambda_m}     (the curve's response to lambda_m),

with rho(r) = |r| (the IO; ``quantile=None``) or the pinball loss of quantile tau in (0, 1),
rho(r) = tau max(r, 0) + (1 - tau) max(-r, 0) (the curves of SBVOIO, seed 000 KER 3: tau < 0.5
under-estimates the demand, tau > 0.5 over-estimates it). Demand is in MW (>= 0, as Pmin is).

Ties: a block with w_b equal to a sample's price may take any fill in [0, e]. The estimator
only considers curves with no w at a sample price, so every sample's response is the whole
number of blocks with w_b > lambda_m and :meth:`FlexibilityCurve.demand` reproduces the
fitted demand exactly. (Letting a tied block take the best-fitting partial fill would fit a
sample price with a continuous demand, which the curve cannot repeat at any other price.)

Structure. Sort the samples by price and group equal prices: x_1 < ... < x_d < ... < x_D. The
response is a non-increasing integer level k_d in 0..N of the price, and every non-increasing
sequence k_1 >= ... >= k_D is the response of a curve: block b is served exactly at the prices
x_1..x_t with t = #{d : k_d >= b}, so w_b goes between x_t and x_(t+1) (:func:`curve_from_levels`:
the midpoint; a margin above x_D for blocks served at every price, below x_1 for blocks never
served; w is non-increasing because t is). The IO is therefore

    min over Pmin >= 0, e >= 0 and k_1 >= ... >= k_D in 0..N of
        sum_d sum_{m at x_d} omega_m rho(P_m - Pmin - e k_d).

* For given Pmin, Pmax the best k is a dynamic program over the prices and levels
  (:func:`best_levels`): F_1(j) = L_1(j), F_d(j) = L_d(j) + min_{j' >= j} F_(d-1)(j'), with
  L_d(j) the loss of the samples at x_d on level j; the suffix minima make it O(M N), exact.
* For given k the best (Pmin, e) is a weighted L1 (quantile) regression of P_m on k_m, an LP
  (:func:`best_range`), exact.
* :func:`fit_fast` alternates the two from several starts (low and high demand quantiles as
  Pmin and Pmax) until the loss stops falling: every step is exact, the loss never rises, and
  it stops at a point that neither step improves; over (Pmin, Pmax) it is a heuristic.
* :func:`fit_exact` solves the whole IO as one MILP on HiGHS (one-hot levels z_(d,j), the
  product e z_(d,j) linearised exactly by McCormick bounds): the global optimum, for small
  instances. Bounding (Pmin, e) loses nothing: for a fixed k the IO is an LP in (Pmin, e)
  (residuals split in parts u, v >= 0) whose optimum is attained at a vertex, where two
  independent ones of {P_m - D_m = 0, Pmin = 0, e = 0} hold: zero residuals of samples a, b at
  levels k_a < k_b give e = (P_b - P_a) / (k_b - k_a) and Pmin = P_a - k_a e; one with Pmin = 0
  gives e = P_a / k_a; one with e = 0 gives Pmin = P_a. Each has 0 <= Pmin, e <= max_m P_m.

At an optimum over Pmin (``fit_fast`` ends on an LP step; ``fit_exact`` without fixed Pmin,
Pmax is a global optimum), raising every level by a small epsilon cannot lower the loss:
tau W_under <= (1 - tau) W_rest, so the weight share of under-predicted samples (P_m > D_m) is
at most 1 - tau (the pinball property; 1/2 for the absolute error).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import scipy.sparse as sp

from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.lp import INF, CompiledLP

LOW_QUANTILES = (0.0, 0.05, 0.25)
HIGH_QUANTILES = (1.0, 0.95, 0.75)
"""Demand quantiles from which :func:`fit_fast` starts: every pair of a low one (Pmin) and a
high one (Pmax), 9 starts (fewer when quantiles coincide)."""

RELATIVE_IMPROVEMENT = 1e-9
"""The alternation of :func:`fit_fast` goes on while the loss falls by more than this share."""

SINGLE_PRICE_MARGIN_EUR_PER_MWH = 0.5
"""How far above (below) the only sample price the blocks always (never) served are put when
every sample has the same price [EUR/MWh]."""


@dataclass(frozen=True)
class Samples:
    """IO samples sorted by price, equal prices grouped.

    Attributes:
        prices: the distinct prices x_1 < ... < x_D [EUR/MWh].
        demand: observed demand P_m [MW], sorted by price.
        weight: sample weights omega_m (>= 0), in the same order.
        group: the index d of each sample's price.
        starts: position of each price's first sample.
    """

    prices: np.ndarray
    demand: np.ndarray
    weight: np.ndarray
    group: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_arrays(cls, prices, demand, sample_weight=None) -> Samples:
        """Validate (one-line :class:`FlexgameInputError` messages) and sort."""
        prices, demand = _vector(prices, "prices"), _vector(demand, "demand")
        if len(prices) != len(demand):
            raise FlexgameInputError(f"inverse optimisation: prices ({len(prices)}) and demand "
                                     f"({len(demand)}) must have the same length")
        if not len(prices):
            raise FlexgameInputError("inverse optimisation: needs at least one sample")
        if (demand < 0).any():
            raise FlexgameInputError("inverse optimisation: demand must be >= 0 MW")
        weight = (np.ones(len(prices)) if sample_weight is None
                  else _vector(sample_weight, "sample_weight"))
        if len(weight) != len(prices):
            raise FlexgameInputError(f"inverse optimisation: sample_weight ({len(weight)}) must "
                                     f"have one value per sample ({len(prices)})")
        if (weight < 0).any() or not weight.sum() > 0:
            raise FlexgameInputError("inverse optimisation: sample_weight must be >= 0 with a "
                                     "positive sum")
        order = np.argsort(prices, kind="stable")
        distinct, starts, group = np.unique(prices[order], return_index=True,
                                            return_inverse=True)
        return cls(distinct, demand[order], weight[order], group, starts)

    @property
    def upper_bound(self) -> float:
        """max_m P_m [MW]: bounds an optimal Pmin and e (module docstring)."""
        return float(self.demand.max())


@dataclass(frozen=True)
class IOFit:
    """A fitted curve.

    Attributes:
        curve: the flexibility curve.
        levels: k_d, its number of served blocks at each distinct sample price.
        loss: sum_m omega_m rho(P_m - curve demand at lambda_m).
    """

    curve: FlexibilityCurve
    levels: np.ndarray
    loss: float


def _vector(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise FlexgameInputError(f"inverse optimisation: {name} must be one-dimensional")
    if not np.isfinite(a).all():
        raise FlexgameInputError(f"inverse optimisation: {name} must be finite")
    return a


def _check_options(n_blocks, quantile) -> None:
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)) or n_blocks < 1:
        raise FlexgameInputError(f"inverse optimisation: n_blocks={n_blocks!r} must be an "
                                 "integer >= 1")
    if quantile is not None and not 0 < quantile < 1:
        raise FlexgameInputError(f"inverse optimisation: quantile={quantile!r} must be None "
                                 "(absolute error) or in (0, 1)")


def loss_weights(quantile: float | None) -> tuple[float, float]:
    """(weight of under-prediction P > D, weight of over-prediction P < D) in rho."""
    return (1.0, 1.0) if quantile is None else (quantile, 1.0 - quantile)


def rho(residual, quantile: float | None) -> np.ndarray:
    """The loss of residuals P - D [MW]: |r|, or the pinball loss of ``quantile``."""
    under, over = loss_weights(quantile)
    r = np.asarray(residual, dtype=float)
    return under * np.maximum(r, 0.0) + over * np.maximum(-r, 0.0)


def level_values(p_min: float, p_max: float, n_blocks: int) -> np.ndarray:
    """Pmin + e j for j = 0..N [MW], computed as :meth:`FlexibilityCurve.demand` does."""
    return p_min + (p_max - p_min) / n_blocks * np.arange(n_blocks + 1)


def level_losses(samples: Samples, p_min: float, p_max: float, n_blocks: int,
                 quantile: float | None) -> np.ndarray:
    """L_d(j): the loss of the samples at price x_d on level j, shape (D, N + 1)."""
    values = level_values(p_min, p_max, n_blocks)
    per_sample = samples.weight[:, None] * rho(samples.demand[:, None] - values[None, :],
                                               quantile)
    return np.add.reduceat(per_sample, samples.starts, axis=0)


def best_levels(samples: Samples, p_min: float, p_max: float, n_blocks: int,
                quantile: float | None = None) -> tuple[float, np.ndarray]:
    """(loss, k) with k_1 >= ... >= k_D the best levels for this Pmin, Pmax: the dynamic
    program of the module docstring, exact. Backtracking takes the lowest of equally good
    levels."""
    losses = level_losses(samples, p_min, p_max, n_blocks, quantile)
    cost = np.empty_like(losses)  # cost[d, j] = F_d(j)
    cost[0] = losses[0]
    for d in range(1, len(losses)):
        cost[d] = losses[d] + np.minimum.accumulate(cost[d - 1, ::-1])[::-1]
    levels = np.empty(len(losses), dtype=np.int64)
    levels[-1] = np.argmin(cost[-1])
    for d in range(len(losses) - 1, 0, -1):
        levels[d - 1] = levels[d] + np.argmin(cost[d - 1, levels[d]:])
    return float(cost[-1, levels[-1]]), levels


def best_range(samples: Samples, levels: np.ndarray, n_blocks: int,
               quantile: float | None = None) -> tuple[float, float]:
    """(Pmin, Pmax) best for the levels k_d [MW]: the LP

        min sum_m omega_m (a u_m + b v_m)  s.t.  Pmin + e k_m + u_m - v_m = P_m,
            Pmin, e, u, v >= 0

    ((a, b) = :func:`loss_weights`), solved as its dual, which has two rows instead of M:

        max sum_m P_m y_m  s.t.  sum_m y_m <= 0  (Pmin),  sum_m k_m y_m <= 0  (e),
            -b omega_m <= y_m <= a omega_m,

    on HiGHS; Pmin and e are the multipliers of the two rows (HiGHS minimises -P y and gives
    them with the sign of a minimisation's <= row, hence the minus), and Pmax = Pmin + N e.

    Raises:
        SolverError: HiGHS returns no optimal solution.
    """
    under, over = loss_weights(quantile)
    rows = sp.csc_matrix(np.vstack([np.ones(len(samples.demand)), levels[samples.group]]))
    lp = CompiledLP.from_arrays(-samples.demand, rows, np.full(2, -INF), np.zeros(2),
                                -over * samples.weight, under * samples.weight)
    p_min, e = np.maximum(-lp.solve().require_optimal("the IO's range regression").row_dual,
                          0.0)
    return float(p_min), float(p_min + n_blocks * e)


def curve_from_levels(samples: Samples, levels: np.ndarray, p_min: float, p_max: float,
                      n_blocks: int) -> FlexibilityCurve:
    """The curve whose response at x_d is k_d blocks: w_b at the midpoint of x_t and
    x_(t+1), t = #{d : k_d >= b}; half the mean price spacing above x_D (t = D) or below x_1
    (t = 0), or :data:`SINGLE_PRICE_MARGIN_EUR_PER_MWH` with one price. No w equals a
    sample price."""
    x = samples.prices
    margin = (x[-1] - x[0]) / (2 * (len(x) - 1)) if len(x) > 1 else SINGLE_PRICE_MARGIN_EUR_PER_MWH
    served_at = (np.asarray(levels)[None, :] >= np.arange(1, n_blocks + 1)[:, None]).sum(axis=1)
    padded = np.r_[x[0] - 2 * margin, x, x[-1] + 2 * margin]  # padded[t] = x_t, t = 1..D
    return FlexibilityCurve(p_min, p_max, (padded[served_at] + padded[served_at + 1]) / 2)


def fit_loss(samples: Samples, curve: FlexibilityCurve, quantile: float | None) -> float:
    """sum_m omega_m rho(P_m - the curve's demand at lambda_m)."""
    predicted = curve.demand(samples.prices)[samples.group]
    return float(np.sum(samples.weight * rho(samples.demand - predicted, quantile)))


def _io_fit(samples: Samples, levels: np.ndarray, p_min: float, p_max: float, n_blocks: int,
            quantile: float | None) -> IOFit:
    curve = curve_from_levels(samples, levels, p_min, p_max, n_blocks)
    return IOFit(curve, np.asarray(levels), fit_loss(samples, curve, quantile))


def _alternate(samples: Samples, n_blocks: int, quantile: float | None, p_min: float,
               p_max: float) -> tuple[float, np.ndarray, float, float]:
    """From (Pmin, Pmax): best levels, best range for them, ... while the loss falls. Returns
    (loss, k, Pmin, Pmax) after a range step: k is best for (Pmin, Pmax) and vice versa."""
    _, levels = best_levels(samples, p_min, p_max, n_blocks, quantile)
    while True:
        p_min, p_max = best_range(samples, levels, n_blocks, quantile)
        loss = float(level_losses(samples, p_min, p_max, n_blocks, quantile)[
            np.arange(len(levels)), levels].sum())
        new_loss, new_levels = best_levels(samples, p_min, p_max, n_blocks, quantile)
        if not new_loss < loss - RELATIVE_IMPROVEMENT * loss:
            return loss, levels, p_min, p_max
        levels = new_levels


def fit_fast(samples: Samples, n_blocks: int, quantile: float | None = None) -> IOFit:
    """The fast estimator (module docstring): exact for given Pmin, Pmax (the dynamic
    program) and for given levels (the LP), a heuristic over (Pmin, Pmax): alternation of
    the two from the demand quantiles of :data:`LOW_QUANTILES` x :data:`HIGH_QUANTILES`."""
    _check_options(n_blocks, quantile)
    starts = {tuple(np.quantile(samples.demand, [low, high]))
              for low, high in product(LOW_QUANTILES, HIGH_QUANTILES)}
    _, levels, p_min, p_max = min(
        (_alternate(samples, n_blocks, quantile, low, high) for low, high in sorted(starts)),
        key=lambda result: result[0])
    return _io_fit(samples, levels, p_min, p_max, n_blocks, quantile)


def fit_exact(samples: Samples, n_blocks: int, quantile: float | None = None,
              p_min: float | None = None, p_max: float | None = None) -> IOFit:
    """The exact estimator: the IO as one MILP on HiGHS (small instances), with Pmin and Pmax
    as variables, or fixed to ``p_min``, ``p_max`` when given:

        min  sum_m omega_m (a u_m + b v_m)
        s.t. Pmin + sum_j j y_(d(m),j) + u_m - v_m = P_m            (u, v >= 0: residual parts)
             sum_j z_(d,j) = 1,  z binary                           (one level per price)
             sum_(j'>=j) z_(d,j') >= sum_(j'>=j) z_(d+1,j'), j >= 1  (k_d >= k_(d+1))
             0 <= y_(d,j) <= E z_(d,j),  e - E (1 - z_(d,j)) <= y_(d,j) <= e   (y = e z)
             0 <= Pmin <= max P,  0 <= e <= E = max P

    (a, b) = :func:`loss_weights`; Pmax = Pmin + N e. The McCormick rows are exact for binary
    z; the bounds keep an optimum (module docstring). Solved to a relative gap of 1e-9.

    Raises:
        FlexgameInputError: only one of ``p_min``, ``p_max`` given, or not 0 <= p_min <= p_max.
        SolverError: HiGHS returns no optimal solution.
    """
    import pyomo.environ as pyo

    _check_options(n_blocks, quantile)
    if p_min is None and p_max is None:
        p_min_bounds = e_bounds = (0.0, samples.upper_bound)
    elif p_min is not None and p_max is not None and 0 <= p_min <= p_max:
        e = (p_max - p_min) / n_blocks
        p_min_bounds, e_bounds = (p_min, p_min), (e, e)
    else:
        raise FlexgameInputError(f"inverse optimisation: fix both p_min and p_max with "
                                 f"0 <= p_min <= p_max, or neither; got {p_min}, {p_max}")
    big = e_bounds[1]
    under, over = loss_weights(quantile)
    group, demand, weight = samples.group, samples.demand, samples.weight

    m = pyo.ConcreteModel()
    m.D = pyo.RangeSet(0, len(samples.prices) - 1)
    m.J = pyo.RangeSet(0, n_blocks)
    m.S = pyo.RangeSet(0, len(demand) - 1)
    m.p_min = pyo.Var(bounds=p_min_bounds)
    m.e = pyo.Var(bounds=e_bounds)
    m.z = pyo.Var(m.D, m.J, domain=pyo.Binary)
    m.y = pyo.Var(m.D, m.J, bounds=(0.0, big))
    m.under = pyo.Var(m.S, bounds=(0.0, None))
    m.over = pyo.Var(m.S, bounds=(0.0, None))
    m.one_level = pyo.Constraint(m.D, rule=lambda m, d: sum(m.z[d, j] for j in m.J) == 1)
    m.non_increasing = pyo.Constraint(
        [(d, j) for d in m.D if d + 1 in m.D for j in m.J if j >= 1],
        rule=lambda m, d, j: sum(m.z[d, i] for i in m.J if i >= j)
        >= sum(m.z[d + 1, i] for i in m.J if i >= j))
    m.y_off = pyo.Constraint(m.D, m.J, rule=lambda m, d, j: m.y[d, j] <= big * m.z[d, j])
    m.y_at_most_e = pyo.Constraint(m.D, m.J, rule=lambda m, d, j: m.y[d, j] <= m.e)
    m.y_on = pyo.Constraint(m.D, m.J,
                            rule=lambda m, d, j: m.y[d, j] >= m.e - big * (1 - m.z[d, j]))
    m.fit = pyo.Constraint(m.S, rule=lambda m, s: m.p_min + sum(
        j * m.y[int(group[s]), j] for j in m.J) + m.under[s] - m.over[s] == float(demand[s]))
    m.loss = pyo.Objective(expr=sum(float(weight[s]) * (under * m.under[s] + over * m.over[s])
                                    for s in m.S), sense=pyo.minimize)
    lp = CompiledLP.from_pyomo(m)
    lp.highs.setOptionValue("mip_rel_gap", 1e-9)
    x = lp.solve().require_optimal("the IO's MILP").x
    z = x[lp.cols(m.z)].reshape(len(m.D), len(m.J))
    found_p_min, found_e = max(float(x[lp.col(m.p_min)]), 0.0), max(float(x[lp.col(m.e)]), 0.0)
    return _io_fit(samples, z.argmax(axis=1), found_p_min, found_p_min + n_blocks * found_e,
                   n_blocks, quantile)


FIT_METHODS = {"fast": fit_fast, "exact": fit_exact}


class FlexibilityCurveEstimator:
    """The IO as a scikit-learn-style estimator.

    Args:
        n_blocks: N, the number of flexible blocks (the paper's test slot has 38).
        quantile: None for the absolute error, or tau in (0, 1) for the pinball loss.
        method: ``"fast"`` (:func:`fit_fast`) or ``"exact"`` (:func:`fit_exact`, a MILP:
            small instances only).

    Attributes (after :meth:`fit`):
        curve_: the fitted :class:`FlexibilityCurve`.
        loss_: its weighted loss on the samples.
    """

    def __init__(self, n_blocks: int = 38, quantile: float | None = None,
                 method: str = "fast"):
        self.n_blocks, self.quantile, self.method = n_blocks, quantile, method

    def fit(self, prices, demand, sample_weight=None) -> FlexibilityCurveEstimator:
        """Fit the curve to prices [EUR/MWh], demand [MW] and optional weights (>= 0)."""
        require_choice("method", self.method, FIT_METHODS)
        fit = FIT_METHODS[self.method](Samples.from_arrays(prices, demand, sample_weight),
                                       self.n_blocks, self.quantile)
        self.curve_, self.loss_ = fit.curve, fit.loss
        return self

    def predict(self, prices) -> np.ndarray:
        """The fitted curve's demand [MW] at ``prices`` [EUR/MWh]."""
        if not hasattr(self, "curve_"):
            raise FlexgameInputError("FlexibilityCurveEstimator: call fit before predict")
        return self.curve_.demand(prices)
