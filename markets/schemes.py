"""TSO-DSO coordination schemes built for a scenario and cleared (ALEXANDER D3.3 ch. 4).

A scheme's layout, its stages in clearing order, is declared once in
:data:`flexgame.markets.layouts.SCHEMES`. :class:`Scheme` builds every stage once for a
scenario (system + bid table): all its layer models, prequalification LPs and bid-aggregation
models are compiled then. :meth:`Scheme.clear` re-solves the whole pipeline for given bid
prices and quantities without rebuilding, which is what the strategic loop calls thousands of
times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexgame.markets.bid_aggregation import ResidualSupplyStage
from flexgame.markets.bids import DeclaredBids, validate_bids
from flexgame.markets.constraints import Penalties
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.grid_state import BidEffects, GridState
from flexgame.markets.layouts import SCHEMES, Grid, Interface, Offers, Stage
from flexgame.markets.market_layer import MarketLayer
from flexgame.markets.options import check, option
from flexgame.markets.pipeline import BuiltLayer, BuiltStage, ClearingRun, MarketStage
from flexgame.markets.prequalification import METHODS as PREQUALIFICATIONS
from flexgame.markets.prequalification import WEIGHTINGS, Prequalification
from flexgame.markets.reprs import names
from flexgame.markets.results import ClearingResult, LayerRecord
from flexgame.markets.system import InterconnectedSystem
from flexgame.markets.ties import TIE_RULES

__all__ = ["SCHEMES", "SCHEME_OPTIONS", "INTERFACES", "ClearingConfig", "ClearingResult",
           "LayerRecord", "Scheme", "build_scheme"]

INTERFACES = ("free", "fixed")
DSO_MODELS = ("lindistflow", "socp")
"""How the DSO markets of a stage whose interface is free (unless fixed) model their feeder:
LinDistFlow (an LP, the default) or the augmented SOCP relaxation of the AC branch-flow
model (:mod:`flexgame.markets.socp_layer`)."""

SCHEME_OPTIONS: dict[str, tuple[str, ...]] = {
    option: tuple(name for name, layout in SCHEMES.items() if option in layout.options)
    for option in dict.fromkeys(o for layout in SCHEMES.values() for o in layout.options)
}
"""Clearing options that only some schemes have, and those schemes (from their layouts)."""
MAX_RSF_STEPS = 1000
"""Most interface-flow steps a feeder's residual supply function may have (offered MW up
and down over ``delta_mw``): each step clears the feeder's market once, so a step much
finer than the offered volume takes minutes and gigabytes for no gain in the result."""


@dataclass
class ClearingConfig:
    """How the market operators clear.

    Attributes:
        scheme: coordination scheme (a name of :data:`SCHEMES`).
        interface: in DSO-first schemes, "free" (a DSO's net activation changes the TSO need)
            or "fixed" (each DSO market keeps its interface flow).
        prequalification: "envelope" or "iterative" (schemes with a prequalified stage).
        envelope_weighting: "price" or "uniform".
        delta_mw: interface-flow step of the bid-aggregation residual supply function [MW];
            at most :data:`MAX_RSF_STEPS` steps per feeder (checked against the bids).
        polygon_sides: sides of the polygon inscribed in feeder |S| limits (used when the
            system's feeder_line_limit is "apparent"); every model of the scheme uses it.
        ties: how every market layer splits equally priced bids (:mod:`flexgame.markets.ties`):
            "bid_order" (the default: in bid-id order, one LP) or "pro_rata" (each tied bid
            at the margin gets the same share of its offered quantity, as far as the grid
            allows; a QP after the LP where bids tie).
        penalties: slack prices.
        dso_model: the feeder model of the DSO markets that clear first with a free
            interface (fragmented, ml01-ml04; :data:`DSO_MODELS`): "lindistflow" or "socp"
            (needs ``interface=free`` and the ``grid`` extra).
        rho: I-DLFM's ADMM penalty parameter [EUR/MW^2] (:mod:`flexgame.markets.idlfm`):
            larger agrees on interface flows faster, smaller on prices.
        tolerance_mw: I-DLFM stops when the TSO's and the DSOs' interface flows differ by at
            most this and the DSOs' flows moved by at most this in the last round [MW].
        max_iterations: most I-DLFM rounds; a clearing that reaches it is reported not
            converged (its exchange's status) with its residuals.
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
    ties: str = option("bid_order", choices=TIE_RULES)
    penalties: Penalties = option(factory=Penalties)
    dso_model: str = option("lindistflow", choices=DSO_MODELS,
                            only_for=("scheme", SCHEME_OPTIONS["dso_model"]))
    rho: float = option(20.0, low=0, low_open=True, only_for=("scheme", SCHEME_OPTIONS["rho"]))
    tolerance_mw: float = option(1e-6, low=0, low_open=True,
                                 only_for=("scheme", SCHEME_OPTIONS["tolerance_mw"]))
    max_iterations: int = option(2000, low=1,
                                 only_for=("scheme", SCHEME_OPTIONS["max_iterations"]))

    def cross_check(self):
        if self.dso_model == "socp" and self.interface == "fixed":
            yield "dso_model", ("needs interface=free: the SOCP DSO market has no held "
                                "interface flow")

    def validate(self, bids: pd.DataFrame | None = None) -> None:
        """Raise :class:`FlexgameInputError` naming the first invalid setting; with the
        ``bids`` to clear (a valid bid table), also the limits that depend on them: the
        penalty for unmet need above every bid price, and at most :data:`MAX_RSF_STEPS`
        residual-supply steps per feeder."""
        check(self)
        if bids is None or bids.empty:
            return
        top = int(np.argmax(bids.price_eur_per_mw.to_numpy(float)))
        problem = self.penalties.unmet_need_problem(
            float(bids.price_eur_per_mw.iat[top]), f"bid {bids.index[top]} asks")
        if problem:
            raise FlexgameInputError(
                f"penalties.unmet_need={self.penalties.unmet_need:g} {problem}")
        if self.scheme in SCHEME_OPTIONS["delta_mw"]:
            offered = bids[bids.level == "distribution"].groupby("feeder").quantity_mw.sum()
            for feeder, mw in offered.items():
                steps = mw // self.delta_mw + 1
                if not steps <= MAX_RSF_STEPS:
                    raise FlexgameInputError(
                        f"delta_mw={self.delta_mw:g} gives {steps:.0f} residual-supply steps for "
                        f"feeder {feeder!r} ({mw:.3g} MW offered up and down); at most "
                        f"{MAX_RSF_STEPS} are allowed: delta_mw >= "
                        f"{mw / (MAX_RSF_STEPS - 1):.3g}")


class Scheme:
    """A coordination scheme built for one scenario; :meth:`clear` runs its pipeline.

    Attributes:
        system, bids, config: the scenario and the clearing options.
        name: the scheme's name; layout: its stages (:data:`SCHEMES`).
        effects: how activations move the grid state; base_state: the grid state before
            any market.
        stages: the built stages, in clearing order.
    """

    def __init__(self, system: InterconnectedSystem, bids: pd.DataFrame,
                 config: ClearingConfig | None = None):
        self.config = config or ClearingConfig()
        validate_bids(bids)
        self.config.validate(bids)
        feeders = [f.name for f in system.feeders]
        bad = np.flatnonzero(((bids.level == "distribution") & ~bids.feeder.isin(feeders))
                             .to_numpy())
        if len(bad):
            raise FlexgameInputError(
                f"bid {bids.index[bad[0]]} is at feeder {bids.feeder.iat[bad[0]]!r}; "
                f"feeders are {', '.join(feeders) or 'none (a transmission-only system)'}"
            )
        self.system, self.bids = system, bids
        self.effects = BidEffects.of(system, bids)
        self.base_state = GridState.base(system)
        self.name = self.config.scheme
        self.layout = SCHEMES[self.name]
        self.stages = [self._build(stage) for stage in self.layout.stages]

    def __repr__(self) -> str:
        layers = names([b.name for b in self.layers()], shown=4)
        shown = self.layout.options + (("ties",) if self.config.ties != "bid_order" else ())
        options = ", ".join(f"{o}={getattr(self.config, o)}" for o in shown)
        return (f"Scheme({self.name!r}, {len(self.bids)} bids, layers [{layers}]"
                + (f", {options}" if options else "") + ")")

    # --- construction ---------------------------------------------------------------------
    def _build(self, stage: Stage) -> BuiltStage:
        layers = self._market_layers(stage)
        cfg = self.config
        if stage.residual_supply:
            return ResidualSupplyStage(self.system, self.bids, layers, cfg.delta_mw,
                                       cfg.penalties, self.base_state)
        if stage.dso_blocking:
            from flexgame.markets.dso_blocking import DSOBlockingStage

            return DSOBlockingStage(self.system, self.bids, layers[0], cfg.polygon_sides)
        if stage.idlfm:
            from flexgame.markets.idlfm import IDLFMStage

            return IDLFMStage(self.system, self.bids, layers, self._market_layers(stage),
                              cfg.rho, cfg.tolerance_mw, cfg.max_iterations, cfg.penalties)
        prequalification = None
        if stage.prequalified:
            prequalification = Prequalification(self.system, self.bids, cfg.prequalification,
                                                cfg.envelope_weighting, cfg.polygon_sides)
        return MarketStage(layers, prequalification)

    def _market_layers(self, stage: Stage) -> list[BuiltLayer]:
        """The stage's market layers: one, or one per feeder in the system's order."""
        if not stage.per_feeder:
            return [BuiltLayer(stage.name, stage.operator, None, self._layer(stage, None))]
        return [BuiltLayer(f"{stage.name}:{f.name}", f"{stage.operator}:{f.name}", f.name,
                           self._layer(stage, f.name)) for f in self.system.feeders]

    def _layer(self, stage: Stage, feeder: str | None) -> MarketLayer:
        bids, all_feeders = self.bids, [f.name for f in self.system.feeders]
        if stage.offers is Offers.ALL:
            candidates = np.arange(len(bids))
        elif stage.offers is Offers.TRANSMISSION:
            candidates = np.flatnonzero((bids.level == "transmission").to_numpy())
        else:
            candidates = np.flatnonzero((bids.feeder == feeder).to_numpy())
        grid = {Grid.NONE: [], Grid.ALL_FEEDERS: all_feeders, Grid.OWN_FEEDER: [feeder]}
        held = (stage.interface is Interface.HELD
                or (stage.interface is Interface.HELD_IF_FIXED
                    and self.config.interface == "fixed"))
        if (stage.interface is Interface.HELD_IF_FIXED and not held
                and self.config.dso_model == "socp"):
            from flexgame.markets.socp_layer import SOCPMarketLayer

            return SOCPMarketLayer(self.system, bids, feeder, self.config.penalties)
        return MarketLayer(self.system, bids, candidates, balance=stage.balance,
                           transmission=stage.ptdf, feeders=grid[stage.grid],
                           held_interfaces=[feeder] if held else [],
                           penalties=self.config.penalties,
                           polygon_sides=self.config.polygon_sides, ties=self.config.ties)

    # --- access ---------------------------------------------------------------------------
    def layers(self) -> list[BuiltLayer]:
        """Every market layer of the built stages, in clearing order (bid aggregation's step
        markets under their ``rsf:<feeder>`` names)."""
        return [b for stage in self.stages for b in stage.layers]

    def layer(self, name: str) -> MarketLayer:
        """The market layer named ``name`` (``common``, ``tso``, ``dso:<feeder>``, ...)."""
        for b in self.layers():
            if b.name == name:
                return b.layer
        raise FlexgameInputError(f"scheme {self.name!r} has no layer {name!r}; layers are "
                                 f"{', '.join(b.name for b in self.layers())}")

    @property
    def common(self) -> MarketLayer:
        """The common market's layer (its LP is what the MPEC best response embeds)."""
        return self.layer("common")

    # --- clearing ---------------------------------------------------------------------------
    def clear(self, price: np.ndarray | None = None, quantity: np.ndarray | None = None,
              forward_price: np.ndarray | None = None, ranging: bool = False) -> ClearingResult:
        """Run the pipeline with declared ``price`` [EUR/MW] and offered ``quantity`` [MW] per
        bid (defaults: the bid table's columns); ``forward_price`` [EUR/MW], when given, is
        each bid's price in the layers after the first one it was offered in. With
        ``ranging``, each market layer also reports the price range of each of its bids
        over which its solution stays the same (:attr:`LayerOutcome.price_range`; needs
        ``ties=bid_order``)."""
        start = time.perf_counter()
        price = self.bids.price_eur_per_mw.to_numpy(float) if price is None else np.asarray(price, float)
        quantity = self.bids.quantity_mw.to_numpy(float) if quantity is None else np.asarray(quantity, float)
        if forward_price is not None:
            forward_price = np.asarray(forward_price, float)
        _require_finite(price, "price", "EUR/MW")
        _require_finite(forward_price, "forward price", "EUR/MW")
        _require_finite(quantity, "quantity", "MW")
        if np.any(quantity < 0):
            bad = int(np.flatnonzero(quantity < 0)[0])
            raise FlexgameInputError(f"bid {bad} quantity {quantity[bad]} MW must be >= 0")
        run = ClearingRun(self.base_state, self.bids, self.effects,
                          DeclaredBids(price, quantity, forward_price), ranging)
        for stage in self.stages:
            stage.clear(run)
        return run.result(self.name, start)


    @property
    def price_ranging_exact(self) -> bool:
        """Whether price ranges of its layers decide the whole clearing: every stage is a
        plain sequence of LP market layers (no prequalification, whose caps read the prices;
        no SOCP DSO layer, which has no LP price ranges;
        no residual supply functions) and ties split by bid order. Then a bid's price change
        that stays within the range of every layer it is offered in leaves every layer's
        solution, and so the clearing, unchanged (each layer passes on only its
        activations)."""
        return self.config.ties == "bid_order" and all(
            isinstance(stage, MarketStage) and stage.prequalification is None
            and all(isinstance(b.layer, MarketLayer) for b in stage.layers)
            for stage in self.stages)


def _require_finite(values: np.ndarray | None, what: str, unit: str) -> None:
    """Stop before clearing when a declared value is NaN or infinite (naming the bid)."""
    if values is not None and not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise FlexgameInputError(f"bid {bad} {what} {values[bad]} {unit} must be a finite number")


def build_scheme(system: InterconnectedSystem, bids: pd.DataFrame, scheme: str,
                 **options) -> Scheme:
    """Shorthand: ``build_scheme(system, bids, "ml03", interface="fixed")``."""
    return Scheme(system, bids, ClearingConfig(scheme=scheme, **options))
