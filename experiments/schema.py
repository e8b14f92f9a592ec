"""The config schema: Hydra structured configs built from flexgame's settings dataclasses.

The settings dataclasses of the library are the schema: their fields, types, defaults and
rules (:func:`flexgame.markets.options.option`) are declared once, and the config groups of
``conf/`` are presets over them. Where a config group gathers fields of a dataclass under other
names (the ``case`` group is ``BidConfig.case`` as ``name`` plus the fields drawing the bids),
its node class is derived from the dataclass by :func:`derive`, which copies the fields with
their defaults and rules, so nothing is declared twice. :func:`register` stores the schema of
every model (:mod:`flexgame.experiments.models`) in Hydra's ConfigStore.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from flexgame.experiments.idr_coupling import ImplicitDRCoupling
from flexgame.games.reasoning import ReasoningConfig
from flexgame.markets.ac_assessment import ASSESSMENTS
from flexgame.markets.bids import DEFAULT_PRICES, BidConfig
from flexgame.markets.nfca import NFCAConfig
from flexgame.markets.options import field_types, option, rules
from flexgame.markets.schemes import ClearingConfig
from flexgame.markets.settlement import SETTLEMENTS
from flexgame.markets.system import SystemConfig, build_system


def derive(name: str, source: type, fields: Mapping[str, str], doc: str) -> type:
    """A dataclass ``name`` whose field ``new`` is ``source``'s field ``old`` for every
    ``new: old`` of ``fields``: same type, default and rules (``only_for`` selectors renamed
    too). :func:`source_values` maps an instance back."""
    renamed = {old: new for new, old in fields.items()}
    types_ = field_types(source)
    by_name = {f.name: f for f in dataclasses.fields(source)}
    specs = []
    for new, old in fields.items():
        f = by_name[old]
        metadata = dict(f.metadata)
        r = rules(f)
        if r.get("only_for"):
            selector, values = r["only_for"]
            metadata["flexgame"] = {**r, "only_for": (renamed.get(selector, selector), values)}
        copy = (dataclasses.field(default=f.default, metadata=metadata)
                if f.default is not dataclasses.MISSING
                else dataclasses.field(default_factory=f.default_factory, metadata=metadata))
        specs.append((new, types_[old], copy))
    cls = dataclasses.make_dataclass(name, specs)
    cls.__doc__ = doc
    cls.__module__ = __name__
    cls.source, cls.fields = source, dict(fields)
    return cls


def source_values(node) -> dict:
    """The fields of a :func:`derive`\\ d node under their names in the source dataclass."""
    return {old: getattr(node, new) for new, old in type(node).fields.items()}


CaseNode = derive("CaseNode", BidConfig, {
    "name": "case", "quantity_share": "quantity_share",
    "critical_bids_per_feeder": "critical_bids_per_feeder", "prices": "prices"},
    "The ``case`` group: a D3.3 case and how its bids are drawn (markets.bids.BidConfig).")
AggregationNode = derive("AggregationNode", BidConfig, {
    "mode": "aggregation", "pool_size": "pool_size"},
    "The ``aggregation`` group: how resources are pooled into FSPs (markets.bids.BidConfig).")
SchemeNode = derive("SchemeNode", ClearingConfig, {
    "name": "scheme", "interface": "interface", "prequalification": "prequalification",
    "envelope_weighting": "envelope_weighting", "delta_mw": "delta_mw",
    "polygon_sides": "polygon_sides", "ties": "ties", "penalties": "penalties",
    "dso_model": "dso_model", "rho": "rho", "tolerance_mw": "tolerance_mw",
    "max_iterations": "max_iterations"},
    "The ``scheme`` group: a coordination scheme and its clearing options "
    "(markets.schemes.ClearingConfig).")


@dataclass
class SettlementNode:
    """The ``settlement`` group: the payment rule (markets.settlement)."""

    name: str = option("pay_as_bid", choices=SETTLEMENTS)


_LIQUIDITY = {f.name: f for f in dataclasses.fields(BidConfig)}["liquidity"]
USE_CASES = ("sufficient", "scarce", "restricted_interface")
"""The use cases of ALEXANDER D4.1 KER 2 (presets in ``conf/use_case/``; the field is their
label in a run's settings: the presets set liquidity and the interface limit)."""


@dataclass
class TsoDsoConfig:
    """One run of the TSO-DSO flexibility market (the default model): the system, the bids
    of a D3.3 case, a coordination scheme, a settlement rule and how FSPs reason; ``use_case``
    labels the D4.1 KER 2 use case a preset set up (None: no preset); ``implicit_dr`` lets a
    BRP's implicit DR respond to the TSO's need before the market clears
    (:mod:`flexgame.experiments.idr_coupling`); ``nfca`` activates non-firm connection
    agreements, capping the distribution bids to their LV users' operating envelopes
    (:mod:`flexgame.markets.nfca`); ``grid_assessment`` is the ex-post check
    of its outcomes, ``linear`` (PTDF + LinDistFlow) or ``ac`` (AC power flows beside it,
    :mod:`flexgame.markets.ac_assessment`)."""

    model: str = option("tso_dso", choices=("tso_dso",))
    system: SystemConfig = option(factory=SystemConfig)
    case: CaseNode = option(factory=CaseNode)
    scheme: SchemeNode = option(factory=SchemeNode)
    settlement: SettlementNode = option(factory=SettlementNode)
    aggregation: AggregationNode = option(factory=AggregationNode)
    reasoning: ReasoningConfig = option(factory=lambda: ReasoningConfig(name="truthful"))
    implicit_dr: ImplicitDRCoupling = option(factory=ImplicitDRCoupling)
    nfca: NFCAConfig = option(factory=NFCAConfig)
    grid_assessment: str = option("linear", choices=ASSESSMENTS)
    seed: int = option(0, low=0)
    liquidity: float = dataclasses.field(default=_LIQUIDITY.default, metadata=_LIQUIDITY.metadata)
    use_case: str | None = option(None, choices=(None, *USE_CASES))

    def cross_check(self):
        bids = self.bid_config()
        for name in DEFAULT_PRICES[bids.case]:  # the bid classes the case draws
            problem = self.scheme.penalties.unmet_need_problem(
                bids.price_ranges()[name][1], f"case.prices.{name} of case {bids.case} reaches")
            if problem:
                yield "scheme.penalties.unmet_need", problem
        cap = self.reasoning.strategy.price_cap
        if self.reasoning.name != "truthful" and cap >= self.scheme.penalties.unmet_need:
            yield ("reasoning.strategy.price_cap", "must be below the TSO's penalty for unmet "
                   f"need (scheme.penalties.unmet_need={self.scheme.penalties.unmet_need:g} "
                   "EUR/MW): a market price cap the buyer would rather leave need unmet than pay")

    def bid_config(self) -> BidConfig:
        """The bids' settings: the case, the aggregation and the liquidity together."""
        return BidConfig(**source_values(self.case), **source_values(self.aggregation),
                         liquidity=self.liquidity)

    def clearing_config(self) -> ClearingConfig:
        """The market operators' settings."""
        return ClearingConfig(**source_values(self.scheme))


def check_systems(runs) -> None:
    """Build the system of each distinct (system settings, direction of the need) among
    ``runs`` (:class:`TsoDsoConfig` settings) and drop it: what only the case data can refuse
    (a case file missing or unreadable, an islanded grid, a feeder at a bus the transmission
    case lacks, a branch name a feeder lacks) stops a sweep before any job starts. Not part
    of :func:`~flexgame.markets.options.check`, which also re-reads stored configs whose case
    files may have moved since; building a system takes 0.2-0.5 s.

    Raises:
        FlexgameInputError: the first system that cannot be built, naming its file or key.
    """
    built = set()
    for run in runs:
        direction = run.bid_config().direction
        key = repr((run.system, direction))
        if key not in built:
            build_system(run.system, direction)
            built.add(key)


def structured(schema: type) -> DictConfig:
    """``schema`` as a Hydra structured config whose data-keyed mappings
    (``option(open_keys=True)``: line ratings, branches per feeder, levels per FSP) accept
    new keys from overrides (``system.tx_ratings_mw={1-2:50}``); every other node is closed.
    Nodes of frozen dataclasses (penalties) stay writable, so that overrides can set them."""
    node = OmegaConf.structured(schema)

    def open_keys(cfg: DictConfig, cls: type) -> None:
        if cls.__dataclass_params__.frozen:
            OmegaConf.set_readonly(cfg, False)
        for f in dataclasses.fields(cls):
            tp = field_types(cls)[f.name]
            if rules(f).get("open_keys"):
                OmegaConf.set_struct(cfg[f.name], False)
            elif dataclasses.is_dataclass(tp):
                open_keys(cfg[f.name], tp)

    open_keys(node, schema)
    return node


def node_type(schema: type, path: list[str]) -> type | None:
    """The dataclass at dotted ``path`` of ``schema`` (None for a mapping of data, a list
    or a scalar)."""
    cls = schema
    for key in path:
        if not dataclasses.is_dataclass(cls):
            return None
        types_ = field_types(cls)
        if key not in types_:
            return None
        cls = types_[key]
    return cls if dataclasses.is_dataclass(cls) else None
