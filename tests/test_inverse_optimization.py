"""Inverse optimisation of the flexibility curve (issue 13, item 4): exact recovery of a
noise-free curve, the dynamic program against brute force, the MILP against the fast
estimator and the dynamic program, the quantile (pinball) variant and bad input."""

from __future__ import annotations

from itertools import combinations_with_replacement

import numpy as np
import pytest

from flexgame.games.inverse_optimization import (
    FlexibilityCurveEstimator,
    Samples,
    best_levels,
    best_range,
    fit_exact,
    fit_fast,
    fit_loss,
    level_values,
    rho,
)
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.flexibility_curve import FlexibilityCurve

TRUE_CURVE = FlexibilityCurve(80.0, 130.0, np.array([50.0, 45.0, 40.0, 35.0, 30.0]))
"""Five blocks of 10 MW above a must-run 80 MW."""


def random_samples(seed: int, n: int = 10, n_prices: int = 6):
    """Prices drawn from ``n_prices`` values (so some repeat) and demand in [0, 20] MW."""
    rng = np.random.default_rng(seed)
    prices = rng.choice(np.linspace(0.0, 10.0, n_prices), n)
    return prices, rng.uniform(0.0, 20.0, n), rng.uniform(0.5, 2.0, n)


def brute_force(samples: Samples, p_min: float, p_max: float, n_blocks: int, quantile):
    """The least loss over every non-increasing level sequence."""
    values = level_values(p_min, p_max, n_blocks)
    return min(
        float(np.sum(samples.weight * rho(samples.demand - values[np.array(k)[samples.group]],
                                          quantile)))
        for k in (sorted(c, reverse=True) for c in combinations_with_replacement(
            range(n_blocks + 1), len(samples.prices))))


@pytest.mark.parametrize("method", ["fast", "exact"])
def test_a_noise_free_curve_is_recovered(method):
    """Prices in every gap between the true w (and above and below all of them), repeated
    and shuffled: every level is observed, so Pmin, Pmax and the demand at each sample are
    identified; both estimators find them with zero loss."""
    prices = np.random.default_rng(1).permutation(np.r_[np.arange(26.5, 55.0, 2.0), 31.5, 48.5])
    demand = TRUE_CURVE.demand(prices)
    model = FlexibilityCurveEstimator(n_blocks=5, method=method).fit(prices, demand)
    assert model.predict(prices) == pytest.approx(demand, abs=1e-7)
    assert model.curve_.p_min == pytest.approx(TRUE_CURVE.p_min, abs=1e-7)
    assert model.curve_.p_max == pytest.approx(TRUE_CURVE.p_max, abs=1e-7)
    assert model.loss_ == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("quantile", [None, 0.3])
def test_dynamic_program_equals_brute_force(seed, quantile):
    prices, demand, weight = random_samples(seed, n=9, n_prices=5)
    samples = Samples.from_arrays(prices, demand, weight)
    rng = np.random.default_rng(100 + seed)
    p_min = rng.uniform(0.0, 8.0)
    p_max = p_min + rng.uniform(0.0, 15.0)
    loss, levels = best_levels(samples, p_min, p_max, 3, quantile)
    assert (np.diff(levels) <= 0).all() and levels.min() >= 0 and levels.max() <= 3
    assert loss == pytest.approx(brute_force(samples, p_min, p_max, 3, quantile), abs=1e-9)
    values = level_values(p_min, p_max, 3)[levels[samples.group]]
    assert loss == pytest.approx(np.sum(weight[np.argsort(prices, kind="stable")]
                                        * rho(samples.demand - values, quantile)), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quantile", [None, 0.25])
def test_exact_milp_is_no_worse_than_fast_and_equals_dynamic_program(seed, quantile):
    prices, demand, weight = random_samples(seed)
    samples = Samples.from_arrays(prices, demand, weight)
    fast = fit_fast(samples, 3, quantile)
    exact = fit_exact(samples, 3, quantile)
    assert exact.loss <= fast.loss + 1e-7 * (1 + fast.loss)
    p_min, p_max = fast.curve.p_min, fast.curve.p_max
    fixed = fit_exact(samples, 3, quantile, p_min=p_min, p_max=p_max)
    dp_loss, _ = best_levels(samples, p_min, p_max, 3, quantile)
    assert fixed.loss == pytest.approx(dp_loss, rel=1e-7, abs=1e-7)
    assert fast.loss == pytest.approx(dp_loss, rel=1e-9)  # fast ends on DP-optimal levels
    for fit in (fast, exact, fixed):
        # the curve answers every sample price with its level, and no w sits on a price
        expected = level_values(fit.curve.p_min, fit.curve.p_max, 3)[fit.levels]
        assert (fit.curve.demand(samples.prices) == expected).all()
        assert not np.isin(fit.curve.w, samples.prices).any()
        assert fit.loss == pytest.approx(fit_loss(samples, fit.curve, quantile))


def test_range_step_is_optimal_for_its_levels():
    """The LP of best_range against a fine grid over (Pmin, e) for fixed levels."""
    prices, demand, weight = random_samples(3)
    samples = Samples.from_arrays(prices, demand, weight)
    _, levels = best_levels(samples, 2.0, 14.0, 3)
    p_min, p_max = best_range(samples, levels, 3)

    def loss(lo, hi):
        values = level_values(lo, hi, 3)[levels[samples.group]]
        return float(np.sum(samples.weight * rho(samples.demand - values, None)))

    grid = min(loss(lo, lo + 3 * e)
               for lo in np.linspace(0, 20, 81) for e in np.linspace(0, 8, 65))
    assert loss(p_min, p_max) <= grid + 1e-9


def test_integer_weights_act_as_repeated_samples():
    prices, demand, _ = random_samples(5, n=8)
    weight = np.array([1, 2, 1, 3, 1, 1, 2, 1])
    weighted = FlexibilityCurveEstimator(3, method="exact").fit(prices, demand, weight)
    repeated = FlexibilityCurveEstimator(3, method="exact").fit(np.repeat(prices, weight),
                                                                np.repeat(demand, weight))
    assert weighted.loss_ == pytest.approx(repeated.loss_, rel=1e-7)


def test_quantile_fits_bound_the_under_predicted_share_and_rise_with_tau():
    """Pinball property at an optimum over Pmin: the weight share of samples above the
    prediction is at most 1 - tau; the mean prediction rises with tau."""
    rng = np.random.default_rng(7)
    prices = rng.uniform(25.0, 55.0, 200)
    demand = TRUE_CURVE.demand(prices) + rng.normal(0.0, 6.0, 200)
    weight = rng.uniform(0.5, 1.5, 200)
    means = []
    for tau in (0.1, 0.5, 0.9):
        model = FlexibilityCurveEstimator(n_blocks=5, quantile=tau).fit(prices, demand, weight)
        predicted = model.predict(prices)
        assert weight[demand > predicted].sum() / weight.sum() <= 1 - tau + 1e-9
        means.append(predicted.mean())
    assert means[0] < means[1] < means[2]


def test_estimator_api():
    prices, demand, _ = random_samples(2)
    model = FlexibilityCurveEstimator(n_blocks=4)
    assert model.fit(prices, demand) is model
    assert isinstance(model.curve_, FlexibilityCurve) and model.curve_.n_blocks == 4
    assert (model.predict([1.0, 5.0, 9.0]) == model.curve_.demand([1.0, 5.0, 9.0])).all()
    assert model.loss_ == pytest.approx(
        fit_loss(Samples.from_arrays(prices, demand), model.curve_, None))


@pytest.mark.parametrize("options, prices, demand, weight", [
    ({}, [1.0, 2.0], [3.0], None),
    ({}, [], [], None),
    ({}, [1.0, np.nan], [3.0, 4.0], None),
    ({}, [1.0, 2.0], [3.0, np.inf], None),
    ({}, [1.0, 2.0], [3.0, -1.0], None),
    ({}, [[1.0, 2.0]], [[3.0, 4.0]], None),
    ({}, [1.0, 2.0], [3.0, 4.0], [1.0]),
    ({}, [1.0, 2.0], [3.0, 4.0], [1.0, -1.0]),
    ({}, [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]),
    ({"n_blocks": 0}, [1.0, 2.0], [3.0, 4.0], None),
    ({"n_blocks": 2.5}, [1.0, 2.0], [3.0, 4.0], None),
    ({"quantile": 1.0}, [1.0, 2.0], [3.0, 4.0], None),
    ({"quantile": 0.0}, [1.0, 2.0], [3.0, 4.0], None),
    ({"method": "milp"}, [1.0, 2.0], [3.0, 4.0], None),
])
def test_bad_input_is_refused_in_one_line(options, prices, demand, weight):
    with pytest.raises(FlexgameInputError) as error:
        FlexibilityCurveEstimator(**{"n_blocks": 2, **options}).fit(prices, demand, weight)
    assert "\n" not in str(error.value)


def test_predict_before_fit_and_half_fixed_range_are_refused():
    with pytest.raises(FlexgameInputError, match="call fit"):
        FlexibilityCurveEstimator().predict([1.0])
    samples = Samples.from_arrays([1.0, 2.0], [3.0, 4.0])
    with pytest.raises(FlexgameInputError, match="p_min and p_max"):
        fit_exact(samples, 2, p_min=1.0)
