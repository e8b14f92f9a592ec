"""Inverse-optimisation benchmarks (run by hand, not by CI).

    python benchmarks/bench_inverse_optimization.py [--repeats 3] [--seed 0]

Prints two tables:

1. one fast fit (:func:`flexgame.games.inverse_optimization.fit_fast`) at the paper's size,
   500 samples and 38 blocks, for the absolute error and the quantiles 0.1 and 0.9: median
   time [s] and the loss, beside the loss of the true curve;
2. the exact MILP (:func:`~flexgame.games.inverse_optimization.fit_exact`) on small
   instances: its time [s] and loss beside the fast fit's, and their gap.

Samples: prices uniform in [18, 53] EUR/MWh (around the test slot's w, 21.32..49.63), demand
the test slot's flexibility curve (IDR reference §3) at that price plus Gaussian noise of
5 MW, clipped at 0; the small instances use a curve with the same Pmin and Pmax and n of its
w, picked evenly.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from flexgame.experiments.idr_cases import TEST_SLOT_CURVE
from flexgame.games.inverse_optimization import Samples, fit_exact, fit_fast, fit_loss
from flexgame.markets.flexibility_curve import FlexibilityCurve
from measure import median_time

NOISE_MW = 5.0
PRICE_RANGE = (18.0, 53.0)


def history(curve: FlexibilityCurve, n_samples: int, seed: int) -> Samples:
    """Synthetic (price, demand) samples around ``curve`` (module docstring)."""
    rng = np.random.default_rng(seed)
    prices = rng.uniform(*PRICE_RANGE, n_samples)
    demand = np.maximum(curve.demand(prices) + rng.normal(0.0, NOISE_MW, n_samples), 0.0)
    return Samples.from_arrays(prices, demand)


def small_curve(n_blocks: int) -> FlexibilityCurve:
    """The test slot's curve with ``n_blocks`` blocks: every (38 / n)-th w."""
    c = TEST_SLOT_CURVE
    picks = np.linspace(0, c.n_blocks - 1, n_blocks).round().astype(int)
    return FlexibilityCurve(c.p_min, c.p_max, c.w[picks])


def paper_size(seed: int, repeats: int) -> pd.DataFrame:
    samples = history(TEST_SLOT_CURVE, 500, seed)
    rows = []
    for quantile in (None, 0.1, 0.9):
        fit = fit_fast(samples, TEST_SLOT_CURVE.n_blocks, quantile)
        rows.append({
            "loss": "absolute" if quantile is None else f"pinball {quantile}",
            "fast fit [s]": median_time(
                lambda q=quantile: fit_fast(samples, TEST_SLOT_CURVE.n_blocks, q), repeats),
            "fitted loss": fit.loss,
            "true curve's loss": fit_loss(samples, TEST_SLOT_CURVE, quantile),
            "Pmin [MW]": fit.curve.p_min, "Pmax [MW]": fit.curve.p_max})
    return pd.DataFrame(rows)


def exact_vs_fast(seed: int) -> pd.DataFrame:
    rows = []
    for n_samples, n_blocks in ((20, 4), (40, 4), (24, 6)):
        samples = history(small_curve(n_blocks), n_samples, seed)
        start = time.perf_counter()
        exact = fit_exact(samples, n_blocks)
        exact_s = time.perf_counter() - start
        start = time.perf_counter()
        fast = fit_fast(samples, n_blocks)
        fast_s = time.perf_counter() - start
        rows.append({"samples": n_samples, "blocks": n_blocks, "exact MILP [s]": exact_s,
                     "fast [s]": fast_s, "exact loss": exact.loss, "fast loss": fast.loss,
                     "gap [%]": 100 * (fast.loss - exact.loss) / exact.loss})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with pd.option_context("display.width", 120, "display.float_format", "{:.4g}".format):
        print("Fast fit at the paper's size (500 samples, 38 blocks):")
        print(paper_size(args.seed, args.repeats).to_string(index=False))
        print("\nExact MILP vs fast fit (absolute error):")
        print(exact_vs_fast(args.seed).to_string(index=False))


if __name__ == "__main__":
    main()
