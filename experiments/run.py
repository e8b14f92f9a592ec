"""One simulation: validate the config, run its model, return the metrics.

:func:`run_experiment` is what ``flexgame run`` and every job of ``flexgame sweep`` call: the
composed config is validated against its model's schema (:func:`flexgame.experiments.config.
settings`) and handed to the model's run (:mod:`flexgame.experiments.models`).
"""

from __future__ import annotations

from pathlib import Path

from flexgame.experiments.config import settings
from flexgame.experiments.models import model_of


def run_experiment(cfg, out_dir, overrides=()) -> dict:
    """Run one simulation of the composed config ``cfg`` into ``out_dir``.

    Args:
        cfg: the composed config (or its plain form).
        overrides: the overrides the user typed (options without effect are refused).

    Raises:
        FlexgameInputError: an invalid config value, naming the key.
    """
    run_settings = settings(cfg, overrides)
    return model_of({"model": run_settings.model}).run(run_settings, Path(out_dir))


def format_metrics(metrics: dict) -> str:
    """The metrics as aligned ``key: value`` lines."""
    width = max(map(len, metrics))
    lines = []
    for key, value in metrics.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
