"""One simulation: validate the config, run its model, return the metrics.

:func:`run_experiment` is what ``flexgame run`` and every job of ``flexgame sweep`` call: the
composed config is validated against its model's schema (:func:`flexgame.experiments.config.
settings`) and handed to the model's run (:mod:`flexgame.experiments.models`). An empty
``hydra.run.dir`` is refused, and the files of an earlier run in the directory are removed
first (:data:`OUTPUTS`), so a reused directory never mixes two runs' files.
"""

from __future__ import annotations

from pathlib import Path

from flexgame.experiments.config import parse_overrides, settings
from flexgame.experiments.models import model_of
from flexgame.markets.errors import FlexgameInputError

OUTPUTS = ("config.yaml", "provenance.json", "bids.csv", "clearing.csv", "fsp.csv", "grid.csv",
           "liquidity.csv", "rounds.csv", "operators.csv", "strategies.csv", "equilibria.csv",
           "distribution.csv", "quarter_hours.csv", "nfca.csv", "error.txt", "metrics.json")
"""Every file a run writes into its directory (:func:`flexgame.experiments.store.write_run`,
the strategic tables of :mod:`flexgame.experiments.tso_dso`) or a failed sweep job
(``error.txt``). All are removed when a run starts: those it does not write would otherwise
be read as its own (a truthful run after a strategic one), and without the earlier
``metrics.json`` a run that stops half-way never looks complete."""


def run_experiment(cfg, out_dir, overrides=()) -> dict:
    """Run one simulation of the composed config ``cfg`` into ``out_dir``.

    Args:
        cfg: the composed config (or its plain form).
        overrides: the overrides the user typed (options without effect are refused).

    Raises:
        FlexgameInputError: an invalid config value, naming the key; an empty
            ``hydra.run.dir`` among the overrides.
    """
    check_run_dir(overrides)
    run_settings = settings(cfg, overrides)
    out = Path(out_dir)
    remove_outputs(out)
    return model_of({"model": run_settings.model}).run(run_settings, out)


def check_run_dir(overrides) -> None:
    """Refuse an empty ``hydra.run.dir=`` (Hydra would write every output into the current
    directory, among the user's files).

    Raises:
        FlexgameInputError: naming the override.
    """
    for override in parse_overrides([o for o in overrides if "=" in o]):
        if override.key_or_group == "hydra.run.dir" and not str(override.value() or "").strip():
            raise FlexgameInputError(f"{override.input_line}: hydra.run.dir is empty; give an "
                                     "output directory, or leave it out for the default")


def remove_outputs(out: Path) -> None:
    """Remove the :data:`OUTPUTS` of an earlier run from ``out`` (other files are kept)."""
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)


def format_metrics(metrics: dict) -> str:
    """The metrics as aligned ``key: value`` lines."""
    width = max(map(len, metrics))
    lines = []
    for key, value in metrics.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
