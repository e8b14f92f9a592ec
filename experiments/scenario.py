"""From a resolved Hydra config to the objects the markets package clears.

:func:`build_scenario` turns the config groups of ``conf/`` into a
:class:`markets.system.InterconnectedSystem`, a bid table and a
:class:`markets.schemes.ClearingConfig`. Every value is checked first: an unknown key, a value
of the wrong type or outside its range stops with a :class:`FlexgameInputError` that names the
dotted key (``scheme.delta_mw``) and what is allowed. All randomness comes from
``np.random.default_rng(cfg.seed)``: the same config and seed give the same scenario.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from importlib import resources

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from flexgame.markets.bids import AGGREGATIONS, CASES, TSO_NEED_DIRECTION, BidConfig, generate_bids
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.market_layer import Penalties
from flexgame.markets.schemes import SCHEMES, ClearingConfig
from flexgame.markets.settlement import SETTLEMENTS
from flexgame.markets.system import FeederSpec, InterconnectedSystem, SystemConfig, build_system

CONFIG_MODULE = "flexgame.conf"
"""The package holding the Hydra config groups (``pkg://flexgame.conf``)."""


def load_config(overrides: list[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (``["scheme=ml03", "seed=3"]``),
    outside a Hydra app (the ``hydra`` node is left out unless ``return_hydra_config``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    running = get_gh_backup()  # e.g. inside a Hydra app: restored afterwards
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3",
                                      job_name="flexgame"):
            return compose(config_name="config", overrides=list(overrides),
                           return_hydra_config=return_hydra_config)
    finally:
        restore_gh_from_backup(running)


GROUPS = ("system", "case", "scheme", "settlement", "aggregation", "reasoning", "experiment")
"""Config groups users select by name (``scheme=ml03``, ``+experiment=ker2``)."""


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (``conf/<group>/*.yaml``, except ``_*`` bases)."""
    folder = resources.files(CONFIG_MODULE) / group
    return sorted(p.name[:-5] for p in folder.iterdir()
                  if p.name.endswith(".yaml") and not p.name.startswith("_"))


def check_group_overrides(overrides: list[str]) -> None:
    """Refuse ``group=option`` overrides naming an option that does not exist, listing the
    allowed ones (Hydra's own message is a stack of search paths)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import OverrideParseException

    candidates = [a for a in overrides if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException:
        return  # Hydra reports syntax errors itself
    for override in parsed:
        group = override.key_or_group
        if group not in GROUPS or override.is_delete():
            continue
        if override.value_type == ValueType.ELEMENT:
            values = [override.get_value_element_as_str()]
        elif override.value_type in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP):
            values = list(override.sweep_string_iterator())
        else:
            continue
        for value in values:
            require_choice(group, value, group_options(group))


def plain_config(cfg) -> dict:
    """A resolved config (DictConfig or mapping) as plain Python containers."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def _group(cfg: Mapping, key: str) -> dict:
    node = cfg.get(key)
    if not isinstance(node, Mapping):
        raise FlexgameInputError(f"config group {key!r} is missing or not a mapping")
    return dict(node)


def _check_keys(prefix: str, node: Mapping, allowed) -> None:
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise FlexgameInputError(
            f"{prefix}.{unknown[0]} is not an option; allowed keys of {prefix}: "
            f"{', '.join(sorted(allowed))}"
        )


def _number(key: str, value, kind: type, low=None, high=None, low_open=False):
    """``value`` as ``kind`` (int or float) within [low, high] ((low, high] if low_open)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int:
        ok = float(value).is_integer()
    if not ok:
        kind_name = "an integer" if kind is int else "a number"
        raise FlexgameInputError(f"{key}={value!r} must be {kind_name}")
    value = kind(value)
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value > high) or value != value:
        if high is None:
            allowed = f"{'>' if low_open else '>='} {low}"
        else:
            allowed = f"a value in {'(' if low_open else '['}{low}, {high}]"
        raise FlexgameInputError(f"{key}={value} is out of range; allowed: {allowed}")
    return value


def _from_defaults(prefix: str, node: Mapping, cls, skip=(), hidden=()) -> dict:
    """Keyword arguments of dataclass ``cls`` from ``node``: unknown keys (and fields in
    ``hidden``) are refused, keys in ``skip`` are left out, and numbers are checked against
    the type of the field's default."""
    fields = {f.name for f in dataclasses.fields(cls)} - set(hidden)
    _check_keys(prefix, node, fields | set(skip))
    defaults = cls()
    kwargs = {}
    for key, value in node.items():
        if key in skip:
            continue
        default = getattr(defaults, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise FlexgameInputError(f"{prefix}.{key}={value!r} must be true or false")
        elif isinstance(default, (int, float)) and value is not None:
            value = _number(f"{prefix}.{key}", value, type(default))
        elif isinstance(default, str) and not isinstance(value, str):
            raise FlexgameInputError(f"{prefix}.{key}={value!r} must be a string")
        kwargs[key] = value
    return kwargs


def _relabel(prefix: str, error: FlexgameInputError, cls) -> FlexgameInputError:
    """A markets validation error with the config group it came from: ``key=...`` messages
    about a field of ``cls`` become ``prefix.key=...``, others ``prefix: ...``."""
    text = str(error)
    fields = {f.name for f in dataclasses.fields(cls)}
    return FlexgameInputError(
        f"{prefix}.{text}" if text.split("=", 1)[0] in fields else f"{prefix}: {text}")


def check_top_level(cfg: Mapping) -> None:
    """Validate the seed and the settlement rule."""
    _number("seed", cfg.get("seed"), int, low=0)
    require_choice("settlement.name", _group(cfg, "settlement").get("name"), SETTLEMENTS)


def system_config(cfg) -> SystemConfig:
    """The ``system`` group as a :class:`SystemConfig`."""
    node = _group(plain_config(cfg), "system")
    kwargs = _from_defaults("system", node, SystemConfig)
    feeders = kwargs.get("feeders", SystemConfig().feeders)
    if not isinstance(feeders, list) or not feeders:
        raise FlexgameInputError("system.feeders must be a non-empty list of {case, bus, name}")
    specs = []
    for i, spec in enumerate(feeders):
        if isinstance(spec, FeederSpec):
            specs.append(spec)
            continue
        if not isinstance(spec, Mapping):
            raise FlexgameInputError(
                f"system.feeders[{i}]={spec!r} must be a mapping {{case, bus, name}}")
        _check_keys(f"system.feeders[{i}]", spec, ("case", "bus", "name"))
        if "case" not in spec or "bus" not in spec:
            raise FlexgameInputError(f"system.feeders[{i}] needs both case and bus")
        specs.append(FeederSpec(case=str(spec["case"]), name=spec.get("name"),
                                bus=_number(f"system.feeders[{i}].bus", spec["bus"], int)))
    kwargs["feeders"] = specs
    if kwargs.get("v_limits") is not None:
        v = kwargs["v_limits"]
        if not (isinstance(v, (list, tuple)) and len(v) == 2):
            raise FlexgameInputError(
                f"system.v_limits={v!r} must be [v_min, v_max] in p.u. or null")
        lo = _number("system.v_limits[0]", v[0], float, low=0, low_open=True)
        hi = _number("system.v_limits[1]", v[1], float, low=lo, low_open=True)
        kwargs["v_limits"] = (lo, hi)
    if kwargs.get("imbalance_mw") is not None:
        kwargs["imbalance_mw"] = _number("system.imbalance_mw", kwargs["imbalance_mw"], float)
    for key in ("dg_buses_per_feeder", "congested_branches_per_feeder"):
        if key in kwargs:
            _number(f"system.{key}", kwargs[key], int, low=0)
    return SystemConfig(**kwargs)


def bid_config(cfg) -> BidConfig:
    """The ``case`` and ``aggregation`` groups and ``liquidity`` as a :class:`BidConfig`."""
    plain = plain_config(cfg)
    case = _group(plain, "case")
    _check_keys("case", case, ("name", "quantity_share", "critical_bids_per_feeder", "prices"))
    name = case.get("name")
    require_choice("case.name", name, CASES)
    kwargs = {k: v for k, v in case.items() if k != "name"}
    share = kwargs.get("quantity_share", BidConfig().quantity_share)
    if not (isinstance(share, (list, tuple)) and len(share) == 2):
        raise FlexgameInputError(f"case.quantity_share={share!r} must be [low, high]")
    kwargs["quantity_share"] = tuple(_number(f"case.quantity_share[{i}]", v, float)
                                     for i, v in enumerate(share))
    if "critical_bids_per_feeder" in kwargs:
        kwargs["critical_bids_per_feeder"] = _number(
            "case.critical_bids_per_feeder", kwargs["critical_bids_per_feeder"], int, low=0)
    prices = kwargs.pop("prices", None) or {}
    allowed_prices = ("transmission_up", "transmission_down", "distribution_up",
                      "distribution_down", "critical_up", "critical_down")
    _check_keys("case.prices", prices, allowed_prices)
    ranges = {}
    for key, bounds in prices.items():
        if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2):
            raise FlexgameInputError(f"case.prices.{key}={bounds!r} must be [low, high] in EUR/MW")
        ranges[key] = tuple(_number(f"case.prices.{key}[{i}]", v, float)
                            for i, v in enumerate(bounds))
    aggregation = _group(plain, "aggregation")
    _check_keys("aggregation", aggregation, ("mode", "pool_size"))
    mode = aggregation.get("mode", "none")
    require_choice("aggregation.mode", mode, AGGREGATIONS)
    pool = _number("aggregation.pool_size", aggregation.get("pool_size", 10), int, low=1)
    liquidity = _number("liquidity", plain.get("liquidity"), float, low=0, high=1, low_open=True)
    bid_cfg = BidConfig(case=name, liquidity=liquidity, aggregation=mode, pool_size=pool,
                        prices={name: ranges}, **kwargs)
    try:
        bid_cfg.validate()
        bid_cfg.price_ranges()
    except FlexgameInputError as error:
        raise _relabel("case", error, BidConfig) from None
    return bid_cfg


def clearing_config(cfg) -> ClearingConfig:
    """The ``scheme`` group as a :class:`ClearingConfig`."""
    node = _group(plain_config(cfg), "scheme")
    name = node.get("name")
    require_choice("scheme.name", name, SCHEMES)
    kwargs = _from_defaults("scheme", node, ClearingConfig, skip=("name",),
                            hidden=("scheme",))
    penalties = kwargs.pop("penalties", None) or {}
    penalty_kwargs = _from_defaults("scheme.penalties", penalties, Penalties)
    for key, value in penalty_kwargs.items():
        _number(f"scheme.penalties.{key}", value, float, low=0, low_open=True)
    config = ClearingConfig(scheme=name, penalties=Penalties(**penalty_kwargs), **kwargs)
    try:
        config.validate()
    except FlexgameInputError as error:
        raise _relabel("scheme", error, ClearingConfig) from None
    return config


def build_system_for(cfg) -> InterconnectedSystem:
    """The system of ``cfg`` with the TSO need in the direction of its case."""
    plain = plain_config(cfg)
    case = _group(plain, "case").get("name")
    require_choice("case.name", case, CASES)
    system = system_config(plain)
    try:
        return build_system(system, direction=TSO_NEED_DIRECTION[case])
    except FlexgameInputError as error:
        raise _relabel("system", error, SystemConfig) from None


def check_scenario(cfg) -> None:
    """Validate every value :func:`build_scenario` reads, without building the system (no
    case loading, no power flow) or drawing bids: what a sweep checks of each job before
    launching any.

    Raises:
        FlexgameInputError: naming the offending key and what is allowed.
    """
    plain = plain_config(cfg)
    check_top_level(plain)
    clearing_config(plain)
    bid_config(plain)
    system_config(plain)


def build_scenario(cfg) -> tuple[InterconnectedSystem, pd.DataFrame, ClearingConfig]:
    """Validate ``cfg`` and build (system, bid table, clearing config).

    Raises:
        FlexgameInputError: naming the offending key and what is allowed.
    """
    plain = plain_config(cfg)
    check_top_level(plain)
    clearing = clearing_config(plain)
    bids_cfg = bid_config(plain)
    system = build_system_for(plain)
    bids = generate_bids(system, bids_cfg, np.random.default_rng(plain["seed"]))
    return system, bids, clearing
