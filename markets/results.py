"""What a clearing returns: its layers in order and the totals over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from flexgame.markets.bids import DeclaredBids
from flexgame.markets.market_layer import LayerOutcome
from flexgame.markets.statistics import ClearingStatistics

LIQUIDITY_COLUMNS = ["layer", "operator", "bids", "up_mw", "down_mw"]
"""Columns of an offered-liquidity record: the layer, its operator, bids offered and MW
offered up and down."""


@dataclass
class LayerRecord:
    """One cleared layer: its name, the operator buying, the LP outcome, and the price each
    bid declared in this layer [EUR/MW] (differs from the first layer's for forwarded bids
    when FSPs re-price them)."""

    name: str
    operator: str
    outcome: LayerOutcome
    price: np.ndarray

    def __repr__(self) -> str:
        o = self.outcome
        return (f"LayerRecord({self.name!r}, operator {self.operator!r}, accepted "
                f"{o.activation_mw.sum():.2f} MW, cost {o.cost_eur:.2f} EUR)")


@dataclass
class ClearingResult:
    """Outcome of a scheme's whole pipeline for one set of bids.

    Attributes:
        scheme: scheme name.
        layers: the cleared layers in order.
        activation_mw: total accepted quantity per bid over all layers [MW].
        cost_eur: procurement cost J = sum over layers of accepted MW x bid price [EUR].
        unmet_need_mw: TSO need left unmet (from the balance slacks) [MW].
        objective_eur: sum of layer objectives, penalties included (VCG's welfare measure)
            [EUR].
        unqualified_up_pct, unqualified_down_pct: share of forwarded distribution volume
            capped off by prequalification [%] (nan without prequalification).
        runtime_s: wall time of the pipeline [s].
        offered: bids and MW offered per layer (liquidity), one record per layer; see
            :meth:`liquidity`.
        declared: the bids it was cleared with (price, quantity, forwarded price).
        bids: the scheme's bid table (a reference, not a copy; rows are the bid ids).
    """

    scheme: str
    layers: list[LayerRecord]
    activation_mw: np.ndarray
    cost_eur: float
    unmet_need_mw: float
    objective_eur: float
    unqualified_up_pct: float
    unqualified_down_pct: float
    runtime_s: float
    offered: list[dict]
    declared: DeclaredBids
    bids: pd.DataFrame = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"ClearingResult(scheme={self.scheme!r}, {len(self.layers)} layers, cost "
                f"{self.cost_eur:.2f} EUR, accepted {self.activation_mw.sum():.1f} MW, unmet "
                f"{self.unmet_need_mw:.2f} MW)")

    @cached_property
    def statistics(self) -> ClearingStatistics:
        """Tables of this clearing by operator, FSP and layer (see
        :class:`flexgame.markets.statistics.ClearingStatistics`)."""
        return ClearingStatistics(self)

    def liquidity(self) -> pd.DataFrame:
        """Per layer: the layer, its operator, bids offered, MW offered up and down."""
        return pd.DataFrame(self.offered, columns=LIQUIDITY_COLUMNS)

    def declared_cost_by_bid(self) -> np.ndarray:
        """Accepted MW x declared price of every layer, per bid [EUR] (pay-as-bid payment)."""
        return np.sum([l.price * l.outcome.activation_mw for l in self.layers], axis=0)

    def cost_by_operator(self) -> dict[str, float]:
        """Procurement cost per operator [EUR], operators in the order they first clear."""
        out: dict[str, float] = {}
        for layer in self.layers:
            out[layer.operator] = out.get(layer.operator, 0.0) + layer.outcome.cost_eur
        return out

    def activations(self, bids: pd.DataFrame | None = None) -> pd.DataFrame:
        """Tidy table: one row per (bid, layer) with an accepted quantity: bid id, layer,
        operator, FSP, direction, accepted MW, declared price and marginal value [EUR/MW]
        (``bids``: the bid table, by default the scheme's)."""
        bids = self.bids if bids is None else bids
        rows = []
        for layer in self.layers:
            o = layer.outcome
            for b in np.flatnonzero(o.activation_mw > 0):
                rows.append(dict(bid=int(b), layer=layer.name, operator=layer.operator,
                                 fsp=bids.fsp.iat[b], direction=bids.direction.iat[b],
                                 accepted_mw=o.activation_mw[b],
                                 price_eur_per_mw=layer.price[b],
                                 marginal_value_eur_per_mw=o.marginal_value[b]))
        columns = ["bid", "layer", "operator", "fsp", "direction", "accepted_mw",
                   "price_eur_per_mw", "marginal_value_eur_per_mw"]
        return pd.DataFrame(rows, columns=columns)
