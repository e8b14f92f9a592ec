"""DSO markets cleared on the SOCP relaxation (issue 14, item 3: ``scheme.dso_model=socp``):
what LinDistFlow's lossless model risks, judged by an AC power flow."""

from __future__ import annotations

import pytest

from flexgame.experiments.evaluation import clear
from flexgame.experiments.scenario import Scenario
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.schemes import ClearingConfig, Scheme
from flexgame.markets.socp_layer import SOCPMarketLayer


@pytest.mark.parametrize("case", ["A", "B"])
def test_socp_dso_markets_are_ac_safe_where_lindistflow_ones_are_not(case):
    """Fragmented (DSO markets on their own feeders, then the TSO market of transmission
    bids): on LinDistFlow the DSOs relieve their tightened lines exactly to the rating of the
    lossless model, which the AC power flow finds a fraction of a percent over (flagged); on
    the augmented, conservative SOCP they are AC-safe, at a cost within 1 % of it."""
    scenario = Scenario.from_case(case, 0)
    linear = clear(scenario, "fragmented", grid_assessment="ac")
    socp = clear(scenario, "fragmented", grid_assessment="ac", dso_model="socp")
    assert linear.kpis["flagged_ac"] and 0 < linear.kpis["max_congestion_ac_pct"] < 1
    assert socp.kpis["grid_safe_ac"] and not socp.kpis["flagged_ac"]
    assert socp.kpis["total_cost"] == pytest.approx(linear.kpis["total_cost"], rel=0.01)
    layers = {l.name: l for l in socp.result.layers}
    assert all(l.outcome.line_slack == pytest.approx(0.0, abs=1e-6)
               for name, l in layers.items() if name.startswith("dso:"))


def test_socp_layers_replace_only_the_free_dso_markets(system, bids_a):
    scheme = Scheme(system, bids_a, ClearingConfig(scheme="ml02", dso_model="socp"))
    kinds = {b.name: type(b.layer).__name__ for b in scheme.layers()}
    assert kinds["dso:case69"] == "SOCPMarketLayer" and kinds["tso"] == "MarketLayer"
    assert kinds["corrective:case69"] == "MarketLayer"  # held interface: LinDistFlow
    assert not scheme.price_ranging_exact
    assert isinstance(scheme.layer("dso:case141"), SOCPMarketLayer)


def test_dso_model_is_checked():
    with pytest.raises(FlexgameInputError, match="dso_model.*interface=free"):
        ClearingConfig(scheme="ml01", interface="fixed", dso_model="socp").validate()
    with pytest.raises(FlexgameInputError, match="dso_model"):
        ClearingConfig(scheme="common", dso_model="ipopt").validate()
