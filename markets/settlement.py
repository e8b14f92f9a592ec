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
    the result was cleared with; the other rules need only the result). The payments are
    those of :func:`bid_payments`, laid out as tables."""
    require_choice("settlement", rule, SETTLEMENTS)
    bids = result.bids
    table = result.activations()
    rates = _layer_rates(scheme, result, rule)
    table["payment_eur_per_mw"] = np.concatenate([np.empty(0), *(r for _, r in rates)])
    table["payment_eur"] = table.accepted_mw * table.payment_eur_per_mw
    bid_payment = _paid(result, rates)
    true_cost = bids.cost_eur_per_mw.to_numpy(float) * result.activation_mw
    fsp = pd.DataFrame({"fsp": bids.fsp, "payment_eur": bid_payment, "true_cost_eur": true_cost,
                        "accepted_mw": result.activation_mw}).groupby("fsp", sort=True).sum()
    fsp["profit_eur"] = fsp.payment_eur - fsp.true_cost_eur
    return Settlement(rule, table, bid_payment, fsp.reset_index())


def bid_payments(scheme, result, rule: str = "pay_as_bid") -> np.ndarray:
    """Payment per bid of a clearing ``result`` of ``scheme`` under ``rule`` [EUR, received
    by the FSP: positive], aligned with the bid table: over the layers that accepted it, its
    accepted MW times its rate there (:func:`_layer_rates`). Arrays only, no tables: the
    strategic loop's payments (equal to ``settle(scheme, result, rule).bid_payment_eur``)."""
    require_choice("settlement", rule, SETTLEMENTS)
    return _paid(result, _layer_rates(scheme, result, rule))


def _layer_rates(scheme, result, rule: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer of ``result``, in order: the bids it accepted (accepted MW > 0, ascending:
    the rows of :meth:`~flexgame.markets.results.ClearingResult.activations`) and the rate
    each is paid there under ``rule`` [EUR/MW]: its declared price (pay_as_bid); the highest
    declared price among the layer's accepted bids of its direction (uniform); its marginal
    value (nodal); its Clarke payment over its accepted MW in all layers (vcg)."""
    per_mw = (_vcg_payments(scheme, result) / np.maximum(result.activation_mw, 1e-12)
              if rule == "vcg" else None)
    direction = result.bids.direction.to_numpy() if rule == "uniform" else None
    rates = []
    for layer in result.layers:
        rows = np.flatnonzero(layer.outcome.activation_mw > 0)
        if rule == "pay_as_bid":
            rate = layer.price[rows]
        elif rule == "uniform":
            rate = _uniform_rate(layer.price[rows], direction[rows])
        elif rule == "nodal":
            rate = layer.outcome.marginal_value[rows]
        else:
            rate = per_mw[rows]
        rates.append((rows, np.asarray(rate, dtype=float)))
    return rates


def _uniform_rate(price: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Pay-as-cleared rate of a layer's accepted bids [EUR/MW]: per direction, the highest
    declared ``price`` [EUR/MW] among the bids of that ``direction``."""
    rate = np.empty(len(price))
    for d in set(direction):
        same = direction == d
        rate[same] = price[same].max()
    return rate


def _paid(result, rates: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Payment per bid [EUR]: accepted MW times rate [EUR/MW], summed over the layers in
    order (``rates`` from :func:`_layer_rates`)."""
    payment = np.zeros(len(result.activation_mw))
    for layer, (rows, rate) in zip(result.layers, rates):
        payment[rows] += layer.outcome.activation_mw[rows] * rate
    return payment


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
