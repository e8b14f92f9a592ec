"""Bad input to the clearing: every mistake stops with a FlexgameInputError that names the
offending key or bid and, where the choice is finite, lists what is allowed.

(Clearing part: schemes, clearing options, bid tables as a scheme sees them, settlement.)
"""

from __future__ import annotations

import numpy as np
import pytest

from flexgame.markets.bids import BidConfig, generate_bids
from flexgame.markets.constraints import Penalties
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.schemes import SCHEMES, ClearingConfig, Scheme, build_scheme
from flexgame.markets.settlement import SETTLEMENTS, settle


@pytest.fixture(scope="module")
def small_bids(system):
    """Case-A bids of 10 % of the resources (a quick market on the default system)."""
    return generate_bids(system, BidConfig(case="A", liquidity=0.1), np.random.default_rng(0))


@pytest.fixture(scope="module")
def common(system, small_bids):
    return build_scheme(system, small_bids, "common")


def _lists_all(message: str, allowed) -> bool:
    return all(name in message for name in allowed)


@pytest.mark.parametrize("make", [
    lambda system, bids: ClearingConfig(scheme="ml07").validate(),
    lambda system, bids: build_scheme(system, bids, "ml07"),
    lambda system, bids: Scheme(system, bids, ClearingConfig(scheme="ML03")),
], ids=["config", "build_scheme", "Scheme"])
def test_unknown_scheme_lists_allowed(system, small_bids, make):
    with pytest.raises(FlexgameInputError) as err:
        make(system, small_bids)
    message = str(err.value)
    assert "scheme=" in message and _lists_all(message, SCHEMES), message


@pytest.mark.parametrize("key, value, allowed", [
    ("interface", "open", ("free", "fixed")),
    ("prequalification", "greedy", ("envelope", "iterative")),
    ("envelope_weighting", "random", ("price", "uniform")),
])
def test_unknown_clearing_option_lists_allowed(system, small_bids, key, value, allowed):
    with pytest.raises(FlexgameInputError) as err:
        build_scheme(system, small_bids, "ml03", **{key: value})
    message = str(err.value)
    assert f"{key}={value!r}" in message and _lists_all(message, allowed), message


def test_too_few_polygon_sides(system, small_bids):
    with pytest.raises(FlexgameInputError, match="polygon_sides=3"):
        build_scheme(system, small_bids, "common", polygon_sides=3)


@pytest.mark.parametrize("delta", [0.0, -0.25, float("nan")])
def test_non_positive_delta(system, small_bids, delta):
    with pytest.raises(FlexgameInputError, match="delta_mw"):
        ClearingConfig(scheme="bid_aggregation", delta_mw=delta).validate()
    with pytest.raises(FlexgameInputError, match="delta_mw"):
        build_scheme(system, small_bids, "bid_aggregation", delta_mw=delta)


def test_unknown_settlement_lists_allowed(common):
    result = common.clear()
    with pytest.raises(FlexgameInputError) as err:
        settle(common, result, "second_price")
    message = str(err.value)
    assert "settlement='second_price'" in message and _lists_all(message, SETTLEMENTS), message


@pytest.mark.parametrize("quantity", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_bid_quantity_rejected_when_building(system, small_bids,
                                                                     quantity):
    bids = small_bids.copy()
    bids.loc[3, "quantity_mw"] = quantity
    for scheme in ("common", "ml03"):
        with pytest.raises(FlexgameInputError, match=r"bid 3 .*quantity"):
            build_scheme(system, bids, scheme)


@pytest.mark.parametrize("argument", ["price", "quantity", "forward_price"])
def test_non_finite_declared_values_rejected_when_clearing(common, small_bids, argument):
    """NaN or infinite prices and quantities never reach the solver (issue 12, defect 1)."""
    values = (small_bids.quantity_mw if argument == "quantity"
              else small_bids.price_eur_per_mw).to_numpy(float).copy()
    values[4] = float("nan")
    with pytest.raises(FlexgameInputError, match=r"bid 4 .*must be a finite number"):
        common.clear(**{argument: values})


def test_negative_quantity_rejected_when_clearing(common, small_bids):
    quantity = small_bids.quantity_mw.to_numpy(float).copy()
    quantity[5] = -0.5
    with pytest.raises(FlexgameInputError, match=r"bid 5 .*-0.5"):
        common.clear(quantity=quantity)
    # a rejected call leaves the scheme usable
    assert common.clear().unmet_need_mw >= 0


def test_bid_at_unknown_feeder_rejected(system, small_bids):
    """A distribution bid naming a feeder the system does not have would escape every
    distribution constraint (it would clear as a bare injection at its coupling bus)."""
    bids = small_bids.copy()
    b = int(np.flatnonzero((bids.level == "distribution").to_numpy())[0])
    bids.loc[b, "feeder"] = "case70"
    with pytest.raises(FlexgameInputError) as err:
        build_scheme(system, bids, "common")
    message = str(err.value)
    assert f"bid {b}" in message and "case70" in message
    assert _lists_all(message, [f.name for f in system.feeders]), message


def test_bid_with_unknown_level_rejected(system, small_bids):
    bids = small_bids.copy()
    bids.loc[2, "level"] = "subtransmission"
    with pytest.raises(FlexgameInputError) as err:
        build_scheme(system, bids, "common")
    message = str(err.value)
    assert "bid 2" in message and "transmission" in message and "distribution" in message


def test_bid_at_missing_bus_rejected(system, small_bids):
    b = int(np.flatnonzero((small_bids.level == "distribution").to_numpy())[0])
    bids = small_bids.copy()
    bids.loc[b, "bus"] = 999
    with pytest.raises(FlexgameInputError, match="no bus 999"):
        build_scheme(system, bids, "ml01")
    bids = small_bids.copy()
    bids.loc[0, "tx_bus"] = 99
    with pytest.raises(FlexgameInputError, match="bus 99"):
        build_scheme(system, bids, "common")


def test_delta_mw_implying_too_many_steps_refused_at_build(system, small_bids):
    """A residual supply function clears the feeder once per step: steps of 1e-4 MW over the
    offered MW would take minutes and gigabytes; refused with the number of steps."""
    from flexgame.markets.schemes import MAX_RSF_STEPS

    with pytest.raises(FlexgameInputError) as err:
        build_scheme(system, small_bids, "bid_aggregation", delta_mw=1e-5)
    message = str(err.value)
    assert "delta_mw=1e-05" in message and "steps" in message, message
    assert str(MAX_RSF_STEPS) in message and "feeder" in message, message
    # the default step is far below the limit
    build_scheme(system, small_bids, "bid_aggregation")


def test_unmet_need_penalty_must_exceed_every_bid_price(system, small_bids):
    """Below a bid's price the TSO would rather leave its need unmet than buy the bid."""
    top = float(small_bids.price_eur_per_mw.max())
    with pytest.raises(FlexgameInputError) as err:
        build_scheme(system, small_bids, "common", penalties=Penalties(unmet_need=top))
    message = str(err.value)
    assert "penalties.unmet_need=" in message and "must exceed every bid price" in message
    assert f"{top:g}" in message, message
    build_scheme(system, small_bids, "common", penalties=Penalties(unmet_need=top + 1))


@pytest.mark.parametrize("make", ["open_branch", "bus_without_branch"])
def test_islanded_case_refused_when_loaded(make):
    """An islanded bus makes the PTDF singular: refused by name when the case is loaded."""
    from flexgame.markets.case_loading import load_case

    case = load_case("case14")
    tables = {"name": "islands", "baseMVA": case.base_mva,
              "bus": case.bus.iloc[:, :13].to_numpy(), "gen": case.gen.iloc[:, :10].to_numpy(),
              "branch": case.branch.iloc[:, :13].to_numpy()}
    if make == "open_branch":  # 7-8 is the only branch of bus 8
        only = case.branch.index[(case.branch.F_BUS == 7) & (case.branch.T_BUS == 8)][0]
        tables["branch"][only, 10] = 0  # BR_STATUS
        islanded = "[8]"
    else:
        extra = tables["bus"][-1:].copy()
        extra[0, 0], extra[0, 1] = 15, 1
        tables["bus"] = np.vstack([tables["bus"], extra])
        islanded = "[15]"
    with pytest.raises(FlexgameInputError) as err:
        load_case(tables)
    message = str(err.value)
    assert "'islands'" in message and f"islanded buses {islanded}" in message, message
    assert len(message.splitlines()) == 1


def test_game_refuses_a_price_cap_at_or_above_the_unmet_need_penalty():
    """The library's Game checks what the run settings check: a price cap the buyer would
    rather leave need unmet than pay is refused."""
    from flexgame.experiments.scenario import Scenario
    from flexgame.experiments.strategic import Game
    from flexgame.games.strategies import StrategyConfig

    scenario = Scenario.from_case("B", 0)
    with pytest.raises(FlexgameInputError, match="price_cap=500 must be below"):
        Game(scenario, "common", strategy=StrategyConfig(price_cap=500.0),
             penalties=Penalties(unmet_need=400.0))
