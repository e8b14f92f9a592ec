"""flexgame: an agent-based game-theory simulator of TSO-DSO flexibility markets.

One import is enough in a notebook::

    import flexgame as fg

    scenario = fg.Scenario.from_case("B", seed=0)          # system + bids of D3.3 case B
    ml03 = fg.clear(scenario, "ml03")                     # clear, judge ex post, KPIs
    outcome = fg.Game(scenario, "common").iterated_best_response()

The names below are loaded on first use, so that ``flexgame --version`` stays fast. The
subpackages hold the rest: :mod:`flexgame.markets` (networks, bids, clearing, settlement,
KPIs), :mod:`flexgame.games` (best responses, reasoning, equilibrium metrics),
:mod:`flexgame.agents` (the Mesa model), :mod:`flexgame.experiments` (runs, sweeps, reports).
"""

from importlib import import_module, metadata

__version__ = metadata.version("flexgame")

_API = {
    # scenarios and clearing
    "Scenario": "flexgame.experiments.scenario",
    "clear": "flexgame.experiments.evaluation",
    "Clearing": "flexgame.experiments.evaluation",
    # the strategic game
    "Game": "flexgame.experiments.strategic",
    "StrategicOutcome": "flexgame.experiments.strategic",
    # settings
    "SystemConfig": "flexgame.markets.system",
    "FeederSpec": "flexgame.markets.system",
    "BidConfig": "flexgame.markets.bids",
    "PriceRanges": "flexgame.markets.bids",
    "ClearingConfig": "flexgame.markets.schemes",
    "StrategyConfig": "flexgame.games.strategies",
    "ReasoningConfig": "flexgame.games.reasoning",
    # building blocks
    "build_system": "flexgame.markets.system",
    "load_case": "flexgame.markets.case_loading",
    "generate_bids": "flexgame.markets.bids",
    "bid_table": "flexgame.markets.bids",
    "transmission_bid": "flexgame.markets.bids",
    "distribution_bid": "flexgame.markets.bids",
    "Scheme": "flexgame.markets.schemes",
    "SCHEMES": "flexgame.markets.schemes",
    "settle": "flexgame.markets.settlement",
    "assess": "flexgame.markets.grid_assessment",
    "METRICS": "flexgame.markets.metrics",
    "FlexgameInputError": "flexgame.markets.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flexgame' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
