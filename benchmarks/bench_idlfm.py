"""I-DLFM against the common market on the default system (run by hand, not by CI).

    python benchmarks/bench_idlfm.py [--repeats 5] [--seed 0] [--liquidity 1.0 0.6 0.3]

Per D3.3 case and liquidity (the share of bids offering, drawn as in
tests/test_scheme_guarantees.py): the common market's and I-DLFM's costs and their relative
gap, I-DLFM's ADMM rounds, messages and final residuals, and the median time of one clearing
of each already built scheme [s] (what the strategic loop repeats) with their ratio. Default
clearing options (:class:`flexgame.markets.schemes.ClearingConfig`: rho 20 EUR/MW^2,
tolerance 1e-6 MW, at most 2000 rounds).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from flexgame.markets.bids import CASES, TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.idlfm import exchange_of
from flexgame.markets.schemes import build_scheme
from flexgame.markets.system import build_system
from measure import median_time


def offered(bids: pd.DataFrame, liquidity: float, seed: int) -> np.ndarray:
    """Offered MW per bid: every bid at liquidity 1, else a random share of them."""
    q = bids.quantity_mw.to_numpy(float).copy()
    if liquidity < 1.0:
        q[np.random.default_rng(100 + seed).random(len(q)) >= liquidity] = 0.0
    return q


def compare(seed: int, liquidities: list[float], repeats: int) -> pd.DataFrame:
    rows = []
    for case in CASES:
        system = build_system(direction=TSO_NEED_DIRECTION[case])
        bids = generate_bids(system, BidConfig(case=case), np.random.default_rng(seed))
        common, idlfm = (build_scheme(system, bids, name) for name in ("common", "idlfm"))
        for liquidity in liquidities:
            q = offered(bids, liquidity, seed)
            c, r = common.clear(quantity=q), idlfm.clear(quantity=q)
            ex = exchange_of(r)
            t_common = median_time(lambda: common.clear(quantity=q), repeats)
            t_idlfm = median_time(lambda: idlfm.clear(quantity=q), repeats)
            rows.append({
                "case": case, "liquidity": liquidity,
                "common cost [EUR]": c.cost_eur, "idlfm cost [EUR]": r.cost_eur,
                "gap [-]": (r.cost_eur - c.cost_eur) / max(abs(c.cost_eur), 1e-12),
                "status": ex.status, "rounds": ex.iterations, "messages": ex.messages,
                "primal [MW]": ex.primal_residual_mw,
                "dual [EUR/MW]": ex.dual_residual_eur_per_mw,
                "common clear [s]": t_common, "idlfm clear [s]": t_idlfm,
                "ratio [-]": t_idlfm / t_common})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats per timing (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--liquidity", type=float, nargs="+", default=[1.0, 0.6, 0.3])
    args = parser.parse_args()
    pd.set_option("display.width", 250)
    pd.set_option("display.float_format", lambda v: f"{v:.4g}")
    print(f"I-DLFM vs common, seed {args.seed}, median of {args.repeats} clearings")
    print(compare(args.seed, args.liquidity, args.repeats).to_string(index=False))


if __name__ == "__main__":
    main()
