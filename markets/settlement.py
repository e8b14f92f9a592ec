"""Settlement (payment) rules and FSP profits.

Every activated MW is paid in the layer that cleared it:

* ``pay_as_bid``: its own declared price (D3.3's procurement-cost view).
* ``uniform``: pay-as-cleared per layer and direction: the highest declared price among that
  layer's activated bids of the same direction (equal to the balance row's dual where the
  marginal bid is partly accepted and no limit binds).
* ``nodal``: the bid's marginal value in its layer's LP, c_b - d_b (d_b its reduced cost):
  the LMP of its transmission bus (balance and PTDF duals) or the DLMP of its feeder bus
  (LinDistFlow duals, with its power factor); never below its price when accepted.
* ``vcg``: Clarke pivot rule (Vickrey 1961, Clarke 1971, Groves 1973): FSP i receives its
  declared cost in the chosen outcome plus C(-i) - C, where C is the scheme's optimal
  objective with all bids and C(-i) without i's bids (penalties for unmet need included, the
  operators' valuation). Truthful bidding is dominant where one optimisation allocates all
  bids (the common market, or one layer); for sequential schemes it is a heuristic.

FSP profit = payments received - true cost (``cost_eur_per_mw``) of its activated MW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets.errors import require_choice

SETTLEMENTS = ("pay_as_bid", "uniform", "nodal", "vcg")


@dataclass(frozen=True)
class Settlement:
    """Payments of one clearing.

    Attributes:
        rule: settlement rule.
        payments: one row per (bid, layer) with an activation: accepted_mw,
            payment_eur_per_mw, payment_eur.
        bid_payment_eur: total payment per bid (aligned with the bid table) [EUR].
        fsp: per FSP: payment_eur, true_cost_eur, profit_eur, accepted_mw.
    """

    rule: str
    payments: pd.DataFrame
    bid_payment_eur: np.ndarray
    fsp: pd.DataFrame

    def __repr__(self) -> str:
        return (f"Settlement({self.rule!r}, total {self.total_payment_eur:.2f} EUR to "
                f"{int((self.fsp.payment_eur != 0).sum())} of {len(self.fsp)} FSPs)")

    @property
    def total_payment_eur(self) -> float:
        """Sum of all payments [EUR]."""
        return float(self.bid_payment_eur.sum())


def settle(scheme, result, rule: str = "pay_as_bid") -> Settlement:
    """Settle a clearing ``result`` of ``scheme`` under ``rule`` (each activation at the price
    declared in its layer; VCG re-clears the scheme without each FSP's bids, with the bids
    the result was cleared with; the other rules need only the result)."""
    require_choice("settlement", rule, SETTLEMENTS)
    bids = result.bids
    table = result.activations()
    rows = table.bid.to_numpy(dtype=int)
    if rule == "pay_as_bid":
        rate = table.price_eur_per_mw
    elif rule == "uniform":
        rate = table.groupby(["layer", "direction"]).price_eur_per_mw.transform("max")
    elif rule == "nodal":
        rate = table.marginal_value_eur_per_mw
    else:
        # the Clarke payment of each bid, spread over the layers it cleared in by MW
        per_bid = _vcg_payments(scheme, result)
        mw = np.maximum(result.activation_mw[rows], 1e-12)
        rate = pd.Series(per_bid[rows] / mw, index=table.index)
    table["payment_eur_per_mw"] = rate.astype(float)
    table["payment_eur"] = table.accepted_mw * table.payment_eur_per_mw
    bid_payment = np.zeros(len(bids))
    np.add.at(bid_payment, rows, table.payment_eur.to_numpy(dtype=float))
    true_cost = bids.cost_eur_per_mw.to_numpy(float) * result.activation_mw
    fsp = pd.DataFrame({"fsp": bids.fsp, "payment_eur": bid_payment, "true_cost_eur": true_cost,
                        "accepted_mw": result.activation_mw}).groupby("fsp", sort=True).sum()
    fsp["profit_eur"] = fsp.payment_eur - fsp.true_cost_eur
    return Settlement(rule, table, bid_payment, fsp.reset_index())


def _vcg_payments(scheme, result) -> np.ndarray:
    """Clarke-pivot payment per bid: each FSP's payment split over its accepted bids by
    declared cost (by accepted MW where its declared cost is zero)."""
    bids, d = result.bids, result.declared
    payment = np.zeros(len(bids))
    declared = result.declared_cost_by_bid()
    for fsp, rows in bids.groupby("fsp").indices.items():
        if result.activation_mw[rows].sum() <= 0:
            continue
        q = d.quantity_mw.copy()
        q[rows] = 0.0
        without = scheme.clear(d.price_eur_per_mw, q, d.forward_price_eur_per_mw).objective_eur
        others_with = result.objective_eur - declared[rows].sum()
        total = without - others_with
        weights = declared[rows] if declared[rows].sum() > 0 else result.activation_mw[rows]
        payment[rows] = total * weights / weights.sum()
    return payment
