"""The implicit-DR test slot of Vatandoust et al. (EEM 2023) and its five cases (Table II).

Data from flexgame's IDR reference §3: the reserve bids of the paper's Table I (first
quarter of hour 6, 29 January 2020) and the reconstruction of its test-slot flexibility
curve (the paper publishes it only as a figure). Cases: C1 S = +150 MW with Table I; C2 the
same with bid r2- at -20 EUR/MWh; C3 with r2- at +2 EUR/MWh; C4 S = -150 MW; C5 S = -84 MW.
:func:`table_ii` solves each case's bilevel (:mod:`flexgame.games.brp`) and lays the results
out as the paper's Table II.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexgame.games.brp import BRPSlot, solve_by_enumeration, solve_mpec
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.imbalance import ReserveBids

TABLE_I = ReserveBids(
    up_price=[55.85, 58.23, 58.33, 58.43, 4500.0],
    up_mw=[100, 100, 100, 300, 300],
    down_price=[5.63, -110.2, -168.3, -278.9, -279.0],
    down_mw=[100, 100, 100, 300, 300],
)
"""Reserve bids r1..r5 of the paper's Table I [EUR/MWh, MW]."""

TEST_SLOT_CURVE = FlexibilityCurve(
    p_min=86.64,
    p_max=86.64 + 38 * 3.4518,
    w=np.array([49.63, 47.44, 46.77, 46.10, 45.43, 44.76, 44.09, 43.42, 42.75, 42.08, 41.41,
                40.74, 40.07, 39.39, 38.72, 38.05, 37.38, 36.71, 36.04, 35.37, 34.70, 34.03,
                33.36, 32.69, 32.02, 31.35, 30.88, 30.40, 29.93, 29.45, 28.98, 28.50, 28.03,
                27.55, 25.99, 24.44, 22.88, 21.32]),
)
"""The test slot's flexibility curve (IDR reference §3): Pmin 86.64 MW, 38 blocks of
3.4518 MW (top 217.81 MW)."""

DAY_AHEAD_MW, DAY_AHEAD_PRICE, MAX_RETAIL_PRICE = 176.39, 31.35, 49.63

CASES = {
    "C1": (150.0, TABLE_I),
    "C2": (150.0, TABLE_I.with_down_price(1, -20.0)),
    "C3": (150.0, TABLE_I.with_down_price(1, 2.0)),
    "C4": (-150.0, TABLE_I),
    "C5": (-84.0, TABLE_I),
}
"""Case name -> (system imbalance S [MW], reserve bids)."""


def slot(case: str) -> BRPSlot:
    """The BRP's quarter-hour of one of :data:`CASES`."""
    imbalance, reserve = CASES[case]
    return BRPSlot(TEST_SLOT_CURVE, reserve, imbalance, DAY_AHEAD_MW, DAY_AHEAD_PRICE,
                   MAX_RETAIL_PRICE)


def table_ii(cross_check: bool = True) -> pd.DataFrame:
    """The paper's Table II layout for C1-C5: lambda^SI, lambda^DR [EUR/MWh], Dp+, Dp- [MW],
    SIM, DR Net, Net [EUR], solved by enumeration; with ``cross_check`` the MPEC's net
    profit beside it."""
    rows = []
    for case in CASES:
        d = solve_by_enumeration(slot(case))
        row = {"case": case, "S [MW]": CASES[case][0], "lambda_SI [EUR/MWh]": d.imbalance_price,
               "lambda_DR [EUR/MWh]": d.retail_price, "Dp+ [MW]": d.up_mw,
               "Dp- [MW]": d.down_mw, "SIM [EUR]": d.sim_eur, "DR Net [EUR]": d.dr_net_eur,
               "Net [EUR]": d.net_eur}
        if cross_check:
            row["Net by MPEC [EUR]"] = solve_mpec(slot(case)).net_eur
        rows.append(row)
    return pd.DataFrame(rows)
