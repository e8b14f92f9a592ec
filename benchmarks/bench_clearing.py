"""Clearing benchmarks on the default system (run by hand, not by CI).

    python benchmarks/bench_clearing.py [--case B] [--repeats 5] [--seed 0]

Prints four tables:

1. per scheme (one case): building the scheme and clearing it once from scratch, vs re-solving
   the already built scheme with bid prices changed by a random +-10 % (what the strategic
   loop does), and their ratio;
2. the full D3.3 table (9 schemes x 4 cases: build, clear, assess ex post) wall time;
3. ml03 with iterative prequalification (vs operating envelopes) per case;
4. per scheme (one case): re-solving under ties=pro_rata vs ties=bid_order, with bid prices
   changed by a random +-10 % (hardly any ties: pro_rata only checks for them) and with those
   prices rounded to 10 EUR/MW (many ties at the margin: its QP runs).
Times are medians over the repeats [s]. Only the markets layer is used (default system, bids
of the case drawn from the seed, default clearing options unless stated).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from flexgame.markets.bids import CASES, TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.grid_assessment import assess
from flexgame.markets.schemes import SCHEMES, ClearingConfig, Scheme
from flexgame.markets.system import build_system
from measure import median_time


def scenario(case: str, seed: int):
    """(system, truthful bids) of a D3.3 case on the default system."""
    system = build_system(direction=TSO_NEED_DIRECTION[case])
    return system, generate_bids(system, BidConfig(case=case), np.random.default_rng(seed))


def rebuild_vs_resolve(case: str, seed: int, repeats: int) -> pd.DataFrame:
    system, bids = scenario(case, seed)
    rng = np.random.default_rng(seed)
    base_price = bids.price_eur_per_mw.to_numpy(float)
    rows = []
    for name in SCHEMES:
        clearing = ClearingConfig(scheme=name)
        rebuild = median_time(lambda: Scheme(system, bids, clearing).clear(), repeats)
        scheme = Scheme(system, bids, clearing)
        scheme.clear()  # warm start, as in the strategic loop
        resolve = median_time(
            lambda: scheme.clear(price=base_price * rng.uniform(0.9, 1.1, len(base_price))),
            repeats)
        rows.append({"scheme": name, "build + clear [s]": rebuild, "re-solve [s]": resolve,
                     "ratio [-]": rebuild / resolve})
    return pd.DataFrame(rows)


def full_table(seed: int) -> tuple[float, float]:
    """(wall time, time spent building and clearing schemes) of the D3.3 table [s]."""
    start, clearing = time.perf_counter(), 0.0
    for case in CASES:
        system, bids = scenario(case, seed)
        for name in SCHEMES:
            t0 = time.perf_counter()
            result = Scheme(system, bids, ClearingConfig(scheme=name)).clear()
            clearing += time.perf_counter() - t0
            assess(system, bids, result.activation_mw)
    return time.perf_counter() - start, clearing


def iterative_prequalification(seed: int, repeats: int) -> pd.DataFrame:
    rows = []
    for case in CASES:
        system, bids = scenario(case, seed)
        row = {"case": case}
        for method in ("envelope", "iterative"):
            clearing = ClearingConfig(scheme="ml03", prequalification=method)
            row[f"{method}: build + clear [s]"] = median_time(
                lambda: Scheme(system, bids, clearing).clear(), repeats)
            scheme = Scheme(system, bids, clearing)
            row[f"{method}: clear [s]"] = median_time(scheme.clear, repeats)
            result = scheme.clear()
            row[f"{method}: unqualified up/down [%]"] = (
                f"{result.unqualified_up_pct:.1f}/{result.unqualified_down_pct:.1f}")
        rows.append(row)
    return pd.DataFrame(rows)


def tie_rules(case: str, seed: int, repeats: int) -> pd.DataFrame:
    """Per scheme, the median re-solve time under each tie rule, on the same price draws."""
    system, bids = scenario(case, seed)
    rng = np.random.default_rng(seed)
    base_price = bids.price_eur_per_mw.to_numpy(float)
    draws = [base_price * rng.uniform(0.9, 1.1, len(base_price)) for _ in range(repeats)]
    prices = {"+-10 %": draws, "rounded": [np.round(p / 10) * 10 for p in draws]}
    rows = []
    for name in SCHEMES:
        row = {"scheme": name}
        for label, sequence in prices.items():
            for ties in ("bid_order", "pro_rata"):
                scheme = Scheme(system, bids, ClearingConfig(scheme=name, ties=ties))
                scheme.clear()  # warm start, as in the strategic loop
                draw = iter(sequence)
                row[f"{label}: {ties} [s]"] = median_time(
                    lambda: scheme.clear(price=next(draw)), repeats)
            row[f"{label}: ratio [-]"] = (row[f"{label}: pro_rata [s]"]
                                          / row[f"{label}: bid_order [s]"])
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="B", choices=CASES, help="case of table 1")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per timing (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pd.set_option("display.float_format", lambda v: f"{v:.4f}")
    pd.set_option("display.width", 200)

    print(f"1. Rebuild vs re-solve, case {args.case}, seed {args.seed}, "
          f"median of {args.repeats} [s]")
    print(rebuild_vs_resolve(args.case, args.seed, args.repeats).to_string(index=False))

    seconds, clearing = full_table(args.seed)
    print(f"\n2. Full D3.3 table ({len(SCHEMES)} schemes x {len(CASES)} cases = "
          f"{len(SCHEMES) * len(CASES)} runs): {seconds:.2f} s wall time, of which "
          f"{clearing:.2f} s building and clearing schemes (the rest: scenarios, ex-post "
          "assessment)")

    print(f"\n3. ml03 prequalification per case, median of {args.repeats} [s]")
    print(iterative_prequalification(args.seed, args.repeats).to_string(index=False))

    print(f"\n4. Tie rules: re-solve, case {args.case}, seed {args.seed}, bid prices +-10 % "
          f"and rounded to 10 EUR/MW, median of {args.repeats} [s]")
    print(tie_rules(args.case, args.seed, args.repeats).to_string(index=False))


if __name__ == "__main__":
    main()
