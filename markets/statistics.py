"""Tables of one clearing, in the style of PyPSA's ``n.statistics``: ``result.statistics``.

Every table is indexed by names (operator, FSP, layer) and computed on demand from the
clearing result and its bid table; nothing is copied or cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.settlement import settle

if TYPE_CHECKING:
    from flexgame.markets.results import ClearingResult
    from flexgame.markets.schemes import Scheme


class ClearingStatistics:
    """Statistics of a :class:`flexgame.markets.results.ClearingResult`.

    ``result.statistics.cost()`` per operator [EUR], ``.accepted()`` per FSP [MW],
    ``.activations()`` per (bid, layer), ``.liquidity()`` and ``.hhi()`` per layer,
    ``.payments(rule)`` per FSP [EUR].
    """

    def __init__(self, result: ClearingResult):
        self.result = result

    def __repr__(self) -> str:
        return f"ClearingStatistics of {self.result!r}"

    def cost(self) -> pd.Series:
        """Procurement cost per operator (``joint``, ``TSO``, ``DSO:<feeder>``): accepted MW
        x declared price summed over the operator's layers [EUR], penalties excluded."""
        return pd.Series(self.result.cost_by_operator(), name="cost_eur",
                         dtype=float).rename_axis("operator")

    def accepted(self, by_direction: bool = False) -> pd.Series | pd.DataFrame:
        """Accepted MW per FSP over all layers [MW], every FSP of the bid table (0 where
        nothing was accepted), FSPs sorted; ``by_direction``: a table with columns ``up``
        and ``down`` [MW]."""
        bids = self.result.bids
        a = pd.Series(self.result.activation_mw, index=bids.index)
        if not by_direction:
            return a.groupby(bids.fsp.to_numpy()).sum().rename_axis("fsp").rename("accepted_mw")
        table = a.groupby([bids.fsp.to_numpy(), bids.direction.to_numpy()]).sum()
        return (table.unstack(fill_value=0.0).reindex(columns=["up", "down"], fill_value=0.0)
                .rename_axis(index="fsp", columns="direction"))

    def activations(self) -> pd.DataFrame:
        """One row per (bid, layer) with an accepted quantity: bid id, layer, operator, FSP,
        direction, accepted MW, declared price and marginal value (LMP / DLMP) [EUR/MW]."""
        return self.result.activations()

    def liquidity(self) -> pd.DataFrame:
        """Per layer (index, in clearing order): its operator, the number of bids offered to
        it and the MW offered up and down [MW]."""
        return self.result.liquidity().set_index("layer")

    def hhi(self) -> pd.Series:
        """Herfindahl-Hirschman index of accepted MW per layer: 10000 x sum over FSPs of
        (FSP's share of the layer's accepted MW)^2, from 10000 / number of FSPs (equal
        shares) to 10000 (one FSP) [-]. Layers that accepted nothing are left out."""
        fsp = self.result.bids.fsp.to_numpy()
        out = {}
        for layer in self.result.layers:
            a = layer.outcome.activation_mw
            if a.sum() <= 0:
                continue
            shares = pd.Series(a).groupby(fsp).sum() / a.sum()
            out[layer.name] = float(10000 * (shares**2).sum())
        return pd.Series(out, name="hhi", dtype=float).rename_axis("layer")

    def payments(self, rule: str = "pay_as_bid", scheme: Scheme | None = None) -> pd.DataFrame:
        """Per FSP under a settlement rule (:mod:`flexgame.markets.settlement`): payment
        received, true cost of its accepted MW and profit [EUR], accepted MW [MW]. ``vcg``
        re-clears the scheme without each FSP: pass the ``scheme`` that cleared it."""
        if rule == "vcg" and scheme is None:
            raise FlexgameInputError("settlement=vcg re-clears the scheme: pass scheme=")
        return settle(scheme, self.result, rule).fsp.set_index("fsp")
