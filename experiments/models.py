"""The models ``flexgame run`` can run, each a config schema, its config groups and a run.

The ``model`` config group (``conf/model/<name>.yaml``) selects one; the default is the
TSO-DSO flexibility market game. A new model (implicit demand response of a BRP, operating
envelopes, ...) plugs into ``flexgame run/sweep/study/report`` by adding its schema, its
config groups and an entry here, without touching the others.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from flexgame.experiments.implicit_dr import ImplicitDRConfig
from flexgame.experiments.schema import TsoDsoConfig, structured


@dataclass(frozen=True)
class Model:
    """A runnable model.

    Attributes:
        name: its ``model`` option.
        schema: the dataclass of its settings (root of its composed config).
        groups: its config groups (``conf/<group>/``), selected by name on the command line.
        runner: ``"module:function"`` of ``run(settings, out_dir) -> metrics``, imported
            when a run starts (keeps the command line fast).
        columns: columns of a collected runs table -> dotted config keys, in order.
        about: one line for ``--help``.
    """

    name: str
    schema: type
    groups: tuple[str, ...]
    runner: str
    columns: dict[str, str] = field(default_factory=dict)
    about: str = ""

    def run(self, settings, out_dir: Path) -> dict:
        """Run one simulation of ``settings`` into ``out_dir``; returns its metrics."""
        module, function = self.runner.split(":")
        return getattr(importlib.import_module(module), function)(settings, Path(out_dir))


TSO_DSO = Model(
    name="tso_dso", schema=TsoDsoConfig,
    groups=("system", "case", "scheme", "settlement", "aggregation", "reasoning", "use_case"),
    runner="flexgame.experiments.tso_dso:run",
    columns={"scheme": "scheme.name", "case": "case.name", "settlement": "settlement.name",
             "reasoning": "reasoning.name", "liquidity": "liquidity",
             "aggregation": "aggregation.mode", "seed": "seed"},
    about="TSO-DSO flexibility markets with strategic FSPs (ALEXANDER D3.3, D4.1 KER 2)")

IMPLICIT_DR = Model(
    name="implicit_dr", schema=ImplicitDRConfig, groups=(),
    runner="flexgame.experiments.implicit_dr:run",
    columns={"idr_case": "idr.case", "seed": "seed"},
    about="implicit demand response of a BRP in the single imbalance market (ALEXANDER D4.1 "
          "KER 3)")

MODELS: dict[str, Model] = {m.name: m for m in (TSO_DSO, IMPLICIT_DR)}
"""Every model by name."""
DEFAULT_MODEL = "tso_dso"


@cache
def register_schemas() -> None:
    """Store every model's schema in Hydra's ConfigStore as ``<name>_schema`` (the model's
    config file lists it first in its defaults), and make the resolvers the config uses
    known (``job_dirname`` of ``hydra.sweep.subdir``, registered when
    :mod:`flexgame.experiments.sweep` is imported), so that every command, ``--cfg all
    --resolve`` included, can resolve it."""
    from hydra.core.config_store import ConfigStore

    import flexgame.experiments.sweep  # noqa: F401  (registers job_dirname)

    store = ConfigStore.instance()
    for model in MODELS.values():
        store.store(name=f"{model.name}_schema", node=structured(model.schema))


def model_of(config: dict) -> Model:
    """The model of a stored or composed config (``model`` key; default the TSO-DSO game)."""
    return MODELS[config.get("model", DEFAULT_MODEL)]

