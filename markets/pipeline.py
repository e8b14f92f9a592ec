"""One pass through a scheme's stages, and the stages that clear market layers.

Layers pass on what they leave: the grid state their activations produce, and every bid's
remaining quantity (uncleared distribution bids are forwarded automatically). A stage is
built once (:class:`MarketStage` here, bid aggregation's residual-supply stage in
:mod:`flexgame.markets.bid_aggregation`); its ``clear(run)`` solves its layers in one
:class:`ClearingRun`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from flexgame.markets.bids import DeclaredBids
from flexgame.markets.errors import SolverError
from flexgame.markets.grid_state import BidEffects, GridState
from flexgame.markets.market_layer import LayerOutcome, MarketLayer
from flexgame.markets.prequalification import Prequalification
from flexgame.markets.results import ClearingResult, LayerRecord


@dataclass(frozen=True)
class BuiltLayer:
    """A market layer of a built stage: the layer name, the operator clearing it, the feeder
    it belongs to (None for a layer of the whole system) and its model."""

    name: str
    operator: str
    feeder: str | None
    layer: MarketLayer


class ClearingRun:
    """Book-keeping of one pass through a pipeline: remaining quantities, grid state, the
    cleared layers and the offered liquidity, from the system's ``base`` state; with
    ``ranging``, market layers also report their price ranges
    (:attr:`LayerOutcome.price_range`)."""

    def __init__(self, base: GridState, bids: pd.DataFrame, effects: BidEffects,
                 declared: DeclaredBids, ranging: bool = False):
        self.bids, self.effects, self.declared = bids, effects, declared
        self.ranging = ranging
        self.remaining = declared.quantity_mw.copy()
        self.offered_before = np.zeros(len(bids), dtype=bool)
        self.state = base
        self.layers: list[LayerRecord] = []
        self.available: list[dict] = []
        self.unqualified = (np.nan, np.nan)

    @property
    def price(self) -> np.ndarray:
        """Declared price per bid for the next layer [EUR/MW]: the forwarded price for bids
        already offered in an earlier layer (when FSPs re-price them), else the bid price."""
        d = self.declared
        if d.forward_price_eur_per_mw is None:
            return d.price_eur_per_mw
        return np.where(self.offered_before, d.forward_price_eur_per_mw, d.price_eur_per_mw)

    def offer(self, name: str, operator: str, layer: MarketLayer, offered: np.ndarray) -> None:
        """Record the liquidity ``offered`` [MW per bid] to a layer: its bids offering more
        than 0 MW and their MW up and down."""
        cand = layer.candidates
        self.available.append(dict(layer=name, operator=operator,
                                   bids=int((offered[cand] > 0).sum()),
                                   up_mw=float(offered[cand][layer.sign > 0].sum()),
                                   down_mw=float(offered[cand][layer.sign < 0].sum())))

    def clear(self, name: str, operator: str, layer: MarketLayer,
              cap: np.ndarray | None = None) -> LayerOutcome:
        """Clear a layer against the current state and residual TSO need with the remaining
        quantities (capped at ``cap`` [MW per bid] when given) and deliver its activations."""
        offered = self.remaining if cap is None else np.minimum(self.remaining, cap)
        self.offer(name, operator, layer, offered)
        price = self.price
        try:
            out = layer.solve(price, offered, self.state, self.state.residual_need_mw,
                              ranging=self.ranging)
        except SolverError as error:
            raise SolverError(f"layer {name}: {error}") from None
        self.apply(name, operator, out, price)
        cand = layer.candidates
        self.offered_before[cand[offered[cand] > 0]] = True
        return out

    def apply(self, name: str, operator: str, out: LayerOutcome, price: np.ndarray) -> None:
        """Deliver a layer's activations (cleared at ``price``): update remaining quantities
        and the grid state."""
        self.remaining = self.remaining - out.activation_mw
        self.state = self.state.after(self.effects, out.activation_mw)
        self.layers.append(LayerRecord(name, operator, out, price))

    def result(self, scheme: str, start: float) -> ClearingResult:
        """The clearing's result; ``start`` is the ``time.perf_counter()`` it began at."""
        total = np.sum([l.outcome.activation_mw for l in self.layers], axis=0)
        return ClearingResult(
            scheme=scheme, layers=self.layers, activation_mw=total,
            cost_eur=float(sum(l.outcome.cost_eur for l in self.layers)),
            unmet_need_mw=float(sum(l.outcome.unmet_need_mw for l in self.layers)),
            objective_eur=float(sum(l.outcome.objective_eur for l in self.layers)),
            unqualified_up_pct=self.unqualified[0], unqualified_down_pct=self.unqualified[1],
            runtime_s=time.perf_counter() - start,
            offered=self.available,
            declared=self.declared,
            bids=self.bids,
        )


class BuiltStage(Protocol):
    """A stage built for a scenario: its market layers, and how it clears in a run."""

    layers: list[BuiltLayer]

    def clear(self, run: ClearingRun) -> None: ...


class MarketStage:
    """A built market stage: its layers cleared in order, after prequalification of the
    forwarded distribution bids when the stage declares it."""

    def __init__(self, layers: list[BuiltLayer], prequalification: Prequalification | None):
        self.layers, self.prequalification = layers, prequalification

    def clear(self, run: ClearingRun) -> None:
        cap = None if self.prequalification is None else self.prequalify(run)
        for built in self.layers:
            run.clear(built.name, built.operator, built.layer, cap)

    def prequalify(self, run: ClearingRun) -> np.ndarray:
        """Caps on the forwarded bids at the run's current state (the need's direction is
        qualified first) [MW per bid]; records the unqualified volume in the run."""
        need_dir = "up" if run.state.residual_need_mw >= 0 else "down"
        cap = self.prequalification.caps(run.state, run.price, run.remaining, need_dir)
        run.unqualified = self.prequalification.unqualified_pct(run.remaining, cap)
        return cap
