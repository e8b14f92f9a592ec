"""TSO-DSO coordination schemes as pipelines of market layers (ALEXANDER D3.3 ch. 4, SPEC §4).

A scheme is built once for a scenario (system + bid table): all its layer models,
prequalification LPs and bid-aggregation models are compiled then. :meth:`Scheme.clear`
re-solves the whole pipeline for given bid prices and quantities without rebuilding, which is
what the strategic loop calls thousands of times.

Layers pass on what they leave: the grid state their activations produce, and every bid's
remaining quantity (uncleared distribution bids are forwarded automatically).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets.bids import DeclaredBids, validate_bids
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.grid_state import BidEffects, GridState
from flexgame.markets.market_layer import LayerOutcome, MarketLayer, Penalties
from flexgame.markets.options import check, option
from flexgame.markets.prequalification import METHODS as PREQUALIFICATIONS
from flexgame.markets.prequalification import WEIGHTINGS, Prequalification
from flexgame.markets.system import InterconnectedSystem

SCHEMES = ("common", "fragmented", "ml01", "ml02", "ml03", "ml04", "ml05", "ml06",
           "bid_aggregation")
INTERFACES = ("free", "fixed")


SCHEME_OPTIONS = {
    "interface": ("fragmented", "ml01", "ml02", "ml03", "ml04"),
    "prequalification": ("ml03", "ml06"),
    "envelope_weighting": ("ml03", "ml06"),
    "delta_mw": ("bid_aggregation",),
}
"""Clearing options that only some schemes have, and those schemes."""


@dataclass
class ClearingConfig:
    """How the market operators clear.

    Attributes:
        scheme: coordination scheme (see SCHEMES).
        interface: in DSO-first schemes, "free" (a DSO's net activation changes the TSO need)
            or "fixed" (each DSO market keeps its interface flow).
        prequalification: "envelope" or "iterative" (ml03, ml06).
        envelope_weighting: "price" or "uniform".
        delta_mw: interface-flow step of the bid-aggregation residual supply function [MW].
        polygon_sides: sides of the polygon inscribed in feeder |S| limits (used when the
            system's feeder_line_limit is "apparent").
        penalties: slack prices.
    """

    scheme: str = option("common", choices=SCHEMES)
    interface: str = option("free", choices=INTERFACES,
                            only_for=("scheme", SCHEME_OPTIONS["interface"]))
    prequalification: str = option("envelope", choices=PREQUALIFICATIONS,
                                   only_for=("scheme", SCHEME_OPTIONS["prequalification"]))
    envelope_weighting: str = option("price", choices=WEIGHTINGS,
                                     only_for=("scheme", SCHEME_OPTIONS["envelope_weighting"]))
    delta_mw: float = option(0.25, low=0, low_open=True,
                             only_for=("scheme", SCHEME_OPTIONS["delta_mw"]))
    polygon_sides: int = option(12, low=4)
    penalties: Penalties = option(factory=Penalties)

    def validate(self) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting."""
        check(self)


@dataclass
class LayerRecord:
    """One cleared layer: its name, the operator buying, the LP outcome, and the price each
    bid declared in this layer [EUR/MW] (differs from the first layer's for forwarded bids
    when FSPs re-price them)."""

    name: str
    operator: str
    outcome: LayerOutcome
    price: np.ndarray


@dataclass
class ClearingResult:
    """Outcome of a scheme's whole pipeline for one set of bids.

    Attributes:
        scheme: scheme name.
        layers: the cleared layers in order.
        activation_mw: total accepted quantity per bid over all layers [MW].
        cost_eur: procurement cost J = sum over layers of accepted MW x bid price.
        unmet_need_mw: TSO need left unmet (from the balance slacks) [MW].
        objective_eur: sum of layer objectives, penalties included (VCG's welfare measure).
        unqualified_up_pct, unqualified_down_pct: share of forwarded distribution volume
            capped off by prequalification [%] (nan without prequalification).
        runtime_s: wall time of the pipeline [s].
        offered: bids and MW offered per layer (liquidity), one record per layer; see
            :meth:`liquidity`.
        declared: the bids it was cleared with (price, quantity, forwarded price).
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

    def liquidity(self) -> pd.DataFrame:
        """Per layer: the layer, its operator, bids offered, MW offered up and down."""
        return pd.DataFrame(self.offered, columns=["layer", "operator", "bids", "up_mw",
                                                   "down_mw"])

    def declared_cost_by_bid(self) -> np.ndarray:
        """Accepted MW x declared price of every layer, per bid [EUR] (pay-as-bid payment)."""
        return np.sum([l.price * l.outcome.activation_mw for l in self.layers], axis=0)

    def cost_by_operator(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for layer in self.layers:
            out[layer.operator] = out.get(layer.operator, 0.0) + layer.outcome.cost_eur
        return out

    def activations(self, bids: pd.DataFrame) -> pd.DataFrame:
        """Tidy table: one row per (bid, layer) with an accepted quantity."""
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


class _Run:
    """Book-keeping of one pass through a pipeline."""

    def __init__(self, system, bids, effects, declared: DeclaredBids):
        self.system, self.bids, self.effects, self.declared = system, bids, effects, declared
        self.remaining = declared.quantity_mw.copy()
        self.offered_before = np.zeros(len(bids), dtype=bool)
        self.state = GridState.base(system)
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

    def clear(self, name: str, operator: str, layer: MarketLayer, cap: np.ndarray | None = None,
              need: float | None = None, held_targets=None) -> LayerOutcome:
        offered = self.remaining if cap is None else np.minimum(self.remaining, cap)
        cand = layer.candidates
        self.available.append(dict(layer=name, operator=operator,
                                   bids=int((offered[cand] > 0).sum()),
                                   up_mw=float(offered[cand][layer.sign > 0].sum()),
                                   down_mw=float(offered[cand][layer.sign < 0].sum())))
        need = self.state.residual_need_mw if need is None else need
        price = self.price
        out = layer.solve(price, offered, self.state, need, held_targets)
        self.apply(name, operator, out, price)
        self.offered_before[cand[offered[cand] > 0]] = True
        return out

    def apply(self, name: str, operator: str, out: LayerOutcome, price: np.ndarray) -> None:
        """Deliver a layer's activations (cleared at ``price``): update remaining quantities
        and the grid state."""
        self.remaining = self.remaining - out.activation_mw
        self.state = self.state.after(self.effects, out.activation_mw)
        self.layers.append(LayerRecord(name, operator, out, price))

    def record_unqualified(self, offered: np.ndarray, cap: np.ndarray, mask: np.ndarray,
                           direction: np.ndarray) -> None:
        shares = []
        for d in ("up", "down"):
            sel = mask & (direction == d)
            total = offered[sel].sum()
            shares.append(100.0 * (total - np.minimum(cap, offered)[sel].sum()) / total
                          if total > 1e-12 else 0.0)
        self.unqualified = tuple(shares)

    def result(self, scheme: str, start: float) -> ClearingResult:
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
        )


class Scheme:
    """A coordination scheme built for one scenario; :meth:`clear` runs its pipeline."""

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame,
                 config: ClearingConfig | None = None):
        self.config = config or ClearingConfig()
        self.config.validate()
        validate_bids(bids)
        feeders = [f.name for f in system.feeders]
        bad = np.flatnonzero(((bids.level == "distribution") & ~bids.feeder.isin(feeders))
                             .to_numpy())
        if len(bad):
            raise FlexgameInputError(
                f"bid {bids.index[bad[0]]} is at feeder {bids.feeder.iat[bad[0]]!r}; "
                f"feeders are {', '.join(feeders)}"
            )
        self.system, self.bids = system, bids
        self.effects = BidEffects.of(system, bids)
        self.name = self.config.scheme
        self.is_tx = (bids.level == "transmission").to_numpy()
        self.direction = bids.direction.to_numpy()
        self.feeder_names = [f.name for f in system.feeders]
        self.feeder_bids = {n: np.flatnonzero((bids.feeder == n).to_numpy())
                            for n in self.feeder_names}
        self._build()

    # --- construction ---------------------------------------------------------------------
    def _layer(self, candidates, **kwargs) -> MarketLayer:
        return MarketLayer(self.system, self.bids, candidates,
                           penalties=self.config.penalties,
                           polygon_sides=self.config.polygon_sides, **kwargs)

    def _dso_layers(self, held: bool) -> dict[str, MarketLayer]:
        return {n: self._layer(self.feeder_bids[n], balance=False, transmission=False,
                               feeders=[n], held_interfaces=[n] if held else [])
                for n in self.feeder_names}

    def _build(self) -> None:
        s, all_bids = self.name, np.arange(len(self.bids))
        tx_bids = np.flatnonzero(self.is_tx)
        fixed = self.config.interface == "fixed"
        if s == "common":
            self.common = self._layer(all_bids, balance=True, transmission=True,
                                      feeders=self.feeder_names)
        elif s in ("fragmented", "ml01", "ml02", "ml03", "ml04"):
            self.dso = self._dso_layers(held=fixed)
            self.tso = self._layer(tx_bids if s == "fragmented" else all_bids, balance=True,
                                   transmission=True,
                                   feeders=self.feeder_names if s == "ml04" else [])
            if s == "ml02":
                self.corrective = self._dso_layers(held=True)
        elif s in ("ml05", "ml06"):
            self.tso = self._layer(all_bids, balance=True, transmission=True, feeders=[])
            self.dso = self._dso_layers(held=True)
        else:
            from flexgame.markets.bid_aggregation import BidAggregation

            self.aggregation = BidAggregation(self)
        if s in ("ml03", "ml06"):
            self.prequal = Prequalification(self.system, self.bids, self.config.prequalification,
                                            self.config.envelope_weighting,
                                            self.config.polygon_sides)

    # --- clearing ---------------------------------------------------------------------------
    def clear(self, price: np.ndarray | None = None, quantity: np.ndarray | None = None,
              forward_price: np.ndarray | None = None) -> ClearingResult:
        """Run the pipeline with declared ``price`` [EUR/MW] and offered ``quantity`` [MW] per
        bid (defaults: the bid table's columns); ``forward_price`` [EUR/MW], when given, is
        each bid's price in the layers after the first one it was offered in."""
        start = time.perf_counter()
        price = self.bids.price_eur_per_mw.to_numpy(float) if price is None else np.asarray(price, float)
        quantity = self.bids.quantity_mw.to_numpy(float) if quantity is None else np.asarray(quantity, float)
        if np.any(quantity < 0):
            bad = int(np.flatnonzero(quantity < 0)[0])
            raise FlexgameInputError(f"bid {bad} quantity {quantity[bad]} MW must be >= 0")
        if forward_price is not None:
            forward_price = np.asarray(forward_price, float)
        run = _Run(self.system, self.bids, self.effects,
                   DeclaredBids(price, quantity, forward_price))
        s = self.name
        if s == "common":
            run.clear("common", "joint", self.common)
        elif s in ("fragmented", "ml01", "ml02", "ml03", "ml04"):
            for n, layer in self.dso.items():
                run.clear(f"dso:{n}", f"DSO:{n}", layer)
            cap = self._prequalified(run) if s == "ml03" else None
            run.clear("tso", "TSO", self.tso, cap=cap)
            if s == "ml02":
                for n, layer in self.corrective.items():
                    run.clear(f"corrective:{n}", f"DSO:{n}", layer, need=0.0)
        elif s in ("ml05", "ml06"):
            cap = self._prequalified(run) if s == "ml06" else None
            run.clear("tso", "TSO", self.tso, cap=cap)
            for n, layer in self.dso.items():
                run.clear(f"dso:{n}", f"DSO:{n}", layer, need=0.0)
        else:
            self.aggregation.clear(run)
        return run.result(s, start)


    def _prequalified(self, run: _Run) -> np.ndarray:
        """Caps on the forwarded bids at the run's current state (the need's direction is
        qualified first); records the unqualified volume."""
        need_dir = "up" if run.state.residual_need_mw >= 0 else "down"
        cap = self.prequal.caps(run.state, run.price, run.remaining, need_dir)
        run.record_unqualified(run.remaining, cap, ~self.is_tx, self.direction)
        return cap


def build_scheme(system: InterconnectedSystem, bids: pd.DataFrame, scheme: str,
                 **options) -> Scheme:
    """Shorthand: ``build_scheme(system, bids, "ml03", interface="fixed")``."""
    return Scheme(system, bids, ClearingConfig(scheme=scheme, **options))
