"""From command-line overrides to validated settings, with one-line errors.

:func:`load_config` composes ``conf/config.yaml`` with Hydra overrides; :func:`settings`
validates a composed config against its model's schema (:mod:`flexgame.experiments.schema`)
and returns the settings object. Every mistake a user can make in a config value ends as one
:class:`~flexgame.markets.errors.FlexgameInputError` naming the key and what is allowed:
Hydra's and OmegaConf's own errors (an unknown key, a value of the wrong type, a syntax
error, an unknown group option) are translated by :func:`hydra_error`; the rules of the
settings dataclasses are checked by :func:`flexgame.markets.options.check`; an option typed
on the command line that has no effect under the chosen group option is refused
(:func:`check_effective`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from importlib import resources

from omegaconf import DictConfig, OmegaConf

from flexgame.experiments.models import DEFAULT_MODEL, MODELS, register_schemas
from flexgame.experiments.schema import node_type, structured
from flexgame.markets.errors import FlexgameInputError, require_choice
from flexgame.markets.options import check, field_types, normalize, only_for, optional_type

CONFIG_MODULE = "flexgame.conf"
"""The package holding the Hydra config groups (``pkg://flexgame.conf``)."""


def load_config(overrides=(), return_hydra_config: bool = False) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides (``["scheme=ml03", "seed=3"]``),
    outside a Hydra app (the ``hydra`` node is left out unless ``return_hydra_config``).

    Raises:
        FlexgameInputError: one line for any composition error (see :func:`hydra_error`).
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    check_group_overrides(overrides)
    register_schemas()
    running = get_gh_backup()  # e.g. inside a Hydra app: restored afterwards
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3",
                                      job_name="flexgame"):
            return compose(config_name="config", overrides=overrides,
                           return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as error:
        raise hydra_error(error) from None
    finally:
        restore_gh_from_backup(running)


GROUPS = ("model", *dict.fromkeys(g for m in MODELS.values() for g in m.groups), "experiment")
"""Config groups users select by name (``scheme=ml03``, ``+experiment=ker2``): the models'
groups, the model itself and the experiment presets."""
GROUP_SELECTORS = ("name", "mode")
"""Fields that a group's option sets (``scheme=ml03`` sets ``scheme.name``)."""


def group_options(group: str) -> list[str]:
    """Names of the options of a config group (``conf/<group>/*.yaml``)."""
    folder = resources.files(CONFIG_MODULE) / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def parse_overrides(overrides) -> list:
    """Hydra's parse of override lines; a syntax error as one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise hydra_error(error) from None


def check_group_overrides(overrides) -> None:
    """Refuse ``group=option`` overrides naming an option that does not exist, listing the
    allowed ones (Hydra's own message is a stack of search paths)."""
    from hydra.core.override_parser.types import ValueType

    candidates = [a for a in overrides if "=" in a and not a.startswith("-")]
    for override in parse_overrides(candidates):
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


def _cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _kind(tp) -> str:
    """What a value of type hint ``tp`` must be, in words."""
    tp, _ = optional_type(tp)
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    origin = getattr(tp, "__origin__", None)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return "of another type"


def unknown_key(schema: type, key: str) -> FlexgameInputError:
    """``key`` is not an option of ``schema``: name it, the closest option, and the allowed
    keys of its node."""
    *path, name = key.split(".")
    cls = node_type(schema, path)
    allowed = [f.name for f in dataclasses.fields(cls)] if cls else []
    where = f" of {'.'.join(path)}" if path else ""
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {'.'.join([*path, close[0]])}?" if close else ""
    return FlexgameInputError(f"{key} is not an option{where}{hint} allowed keys{where}: "
                              f"{', '.join(allowed)}" if allowed else f"{key} is not an option")


def hydra_error(error: BaseException, schema: type | None = None) -> FlexgameInputError:
    """A Hydra or OmegaConf error as one line naming the key and what is allowed (keys are
    looked up in ``schema``, default the default model's)."""
    from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, MissingMandatoryValue,
                                  ValidationError)

    schema = schema or MODELS[DEFAULT_MODEL].schema
    cause = _cause(error)
    key = str(getattr(cause, "full_key", "") or "")
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key:
        return unknown_key(schema, key)
    if isinstance(cause, ValidationError) and key:
        *path, name = key.split(".")
        cls = node_type(schema, path)
        kind = _kind(field_types(cls)[name]) if cls and name in field_types(cls) else None
        value = getattr(cause, "value", None)
        if kind:
            return FlexgameInputError(f"{key}={value!r} must be {kind}")
    if isinstance(cause, MissingMandatoryValue) and key:
        return FlexgameInputError(f"{key} is missing; give it a value")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines[:2]) or type(error).__name__
    return FlexgameInputError(text.replace("See https://hydra.cc/docs/1.2/advanced/"
                                           "override_grammar/basic for details", "").strip())


def canonical(run_settings) -> dict:
    """Settings as the plain dict a run stores in ``config.yaml`` (what re-runs compare)."""
    return OmegaConf.to_container(OmegaConf.structured(run_settings))


def effective(config: dict) -> dict:
    """A stored config without the options that have no effect in it (the strategy space of
    a truthful run, the pool size without random pools): what distinguishes runs."""
    run_settings = settings(config, check_overrides=False)

    def prune(node, plain: dict) -> dict:
        out = {}
        for f in dataclasses.fields(node):
            only = only_for(f)
            if f.name not in plain or (only and getattr(node, only[0]) not in only[1]):
                continue
            value = getattr(node, f.name)
            out[f.name] = (prune(value, plain[f.name]) if dataclasses.is_dataclass(value)
                           else plain[f.name])
        return out

    return prune(run_settings, plain_config(config))


def plain_config(cfg) -> dict:
    """A resolved config (DictConfig or mapping) as plain Python containers, without Hydra's
    own node."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    return {k: v for k, v in dict(cfg).items() if k != "hydra"}


def _unknown_keys(schema: type, node, prefix: str = "") -> str | None:
    """The first key of a plain config that its schema does not declare (keys of data
    mappings such as line ratings are data, not options)."""
    if not isinstance(node, Mapping):
        return None
    types_ = field_types(schema)
    by_name = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in node.items():
        full = f"{prefix}{key}"
        if key not in by_name:
            return full
        tp, _ = optional_type(types_[key])
        if dataclasses.is_dataclass(tp):
            found = _unknown_keys(tp, value, f"{full}.")
        elif getattr(tp, "__origin__", None) is list and isinstance(value, list):
            (item,) = tp.__args__
            item, _ = optional_type(item)
            found = next((k for i, v in enumerate(value) if dataclasses.is_dataclass(item)
                          and (k := _unknown_keys(item, v, f"{full}[{i}]."))), None)
        else:
            found = None
        if found:
            return found
    return None


def settings(cfg, overrides=(), check_overrides: bool = True):
    """Validate a composed config and return its settings object (an instance of its model's
    schema, e.g. :class:`~flexgame.experiments.schema.TsoDsoConfig`).

    Args:
        cfg: the composed config (DictConfig, with or without the ``hydra`` node) or its
            plain form (a stored ``config.yaml``).
        overrides: the overrides the user typed: those naming an option without effect
            under the chosen group option are refused (unless ``check_overrides`` is false:
            a sweep refuses only options without effect in every job).

    Raises:
        FlexgameInputError: naming the offending key and what is allowed.
    """
    from omegaconf.errors import OmegaConfBaseException

    plain = plain_config(cfg)
    model = plain.get("model", DEFAULT_MODEL)
    require_choice("model", model, list(MODELS))
    schema = MODELS[model].schema
    bad = _unknown_keys(schema, plain)
    if bad:
        raise unknown_key(schema, bad)
    try:
        typed = OmegaConf.merge(structured(schema), plain)
        obj = normalize(OmegaConf.to_object(typed))
    except OmegaConfBaseException as error:
        raise hydra_error(error, schema) from None
    check(obj)
    if check_overrides:
        check_effective(obj, overrides)
    return obj


def effective_problems(obj, overrides) -> dict[str, str]:
    """Overrides (as typed) that set an option without effect in ``obj``, whatever the value:
    ``{key: message}``."""
    from hydra.core.override_parser.types import OverrideType

    problems = {}
    for override in parse_overrides([o for o in overrides if "=" in o]):
        if override.is_hydra_override() or override.type == OverrideType.DEL:
            continue
        *path, name = override.key_or_group.split(".")
        node = obj
        for key in path:
            node = getattr(node, key, None)
        if node is None or not dataclasses.is_dataclass(node):
            continue
        for selector, values in [only_for(f) for f in dataclasses.fields(node)
                                 if f.name == name and only_for(f)]:
            if getattr(node, selector) not in values:
                # a group's own selector (scheme.name) is what users type as scheme=...
                shown = ".".join(path) if selector in GROUP_SELECTORS else ".".join(
                    [*path, selector])
                problems[override.key_or_group] = (
                    f"{override.key_or_group} has no effect with {shown}="
                    f"{getattr(node, selector)}; it applies to {shown}="
                    f"{','.join(map(str, values))}")
    return problems


def check_effective(obj, overrides) -> None:
    """Refuse an override that sets an option without effect under the chosen group option
    (``scheme.interface`` with ``scheme=common``, ``aggregation.pool_size`` with
    ``aggregation=none``)."""
    problems = effective_problems(obj, overrides)
    if problems:
        raise FlexgameInputError(next(iter(problems.values())))
