"""Implicit-DR data (issue 13, item 5): the seeded EV smart-charging history, its rolling-window
samples, the actual response for ex-post evaluation, reserve bids, system imbalance and the CSV
files that replace them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexgame.experiments.idr_cases import TABLE_I
from flexgame.experiments.idr_data import (DT_H, ActualResponse, DayAheadPrices, EVFleet,
                                           EVHistory, HistoryConfig, bids_at,
                                           charging_schedule, history, read_history,
                                           read_imbalance, read_reserve_bids,
                                           reserve_bid_table, reserve_bids, samples, simulate,
                                           system_imbalance)
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.imbalance import MeritOrder

SMALL = HistoryConfig(days=12, fleet=EVFleet(evs_per_day=300))
"""A small history: 12 days of 300 simulated sessions a day (6000 EVs)."""


@pytest.fixture(scope="module")
def truth() -> EVHistory:
    return simulate(SMALL, np.random.default_rng(7))


def test_same_seed_same_history_other_seed_differs():
    a = history(SMALL, np.random.default_rng(1))
    pd.testing.assert_frame_equal(a, history(SMALL, np.random.default_rng(1)))
    b = history(SMALL, np.random.default_rng(2))
    assert not np.allclose(a.demand_mw, b.demand_mw)
    assert not np.allclose(a.price_eur_per_mwh, b.price_eur_per_mwh)
    assert list(a.columns[:4]) == ["day", "quarter_hour", "price_eur_per_mwh", "demand_mw"]
    assert len(a) == 12 * 96 and a.quarter_hour.max() == 95


def test_demand_within_zero_and_the_present_chargers_power(truth):
    s = truth.sessions
    t = np.arange(len(truth.demand))
    present = ((s.start[None, :] <= t[:, None]) & (t[:, None] < s.stop[None, :])) @ s.power_mw
    assert (truth.demand >= 0).all()
    assert (truth.demand <= present + 1e-9).all()
    assert truth.demand.max() <= s.power_mw.sum()
    assert truth.demand.max() > 0


def test_each_session_gets_its_need_when_feasible(truth):
    s = truth.sessions
    index, power = charging_schedule(s, truth.signal + truth.tariff)
    delivered = power.sum(axis=1) * DT_H
    assert (power <= s.power_mw[:, None] + 1e-12).all() and (power >= 0).all()
    np.testing.assert_allclose(delivered, np.minimum(s.energy_mwh, s.deliverable_mwh()),
                               rtol=1e-9, atol=1e-12)
    assert (s.energy_mwh <= s.deliverable_mwh()).mean() > 0.9  # most sessions are feasible
    # the schedule is what the history's demand sums
    total = np.bincount(index.ravel(), power.ravel(), minlength=len(truth.demand))
    np.testing.assert_allclose(total, truth.demand, atol=1e-9)


@pytest.mark.parametrize("day, quarter_hour", [(0, 4), (3, 20), (5, 12), (8, 90), (11, 24)])
def test_demand_is_non_increasing_in_its_own_price(truth, day, quarter_hour):
    """The property inverse optimisation relies on, on the generator's ground truth."""
    actual = ActualResponse(truth)
    t = EVHistory.timeline_index(day, quarter_hour)
    assert actual.demand(day, quarter_hour, truth.signal[t]) == pytest.approx(truth.demand[t])
    grid = np.linspace(-50.0, 120.0, 60)
    demand = np.array([actual.demand(day, quarter_hour, p) for p in grid])
    assert (np.diff(demand) <= 1e-9).all()
    assert demand[0] > demand[-1]  # the fleet does respond


def test_no_session_no_demand(truth):
    """At 11:00 no EV is plugged in (departures by 10:00, arrivals from 14:00)."""
    assert ActualResponse(truth).demand(3, 44, -100.0) == 0.0


def test_noisy_actual_response_is_seeded_and_still_non_increasing(truth):
    def curve(seed):
        actual = ActualResponse(truth, noise_std=0.1, rng=np.random.default_rng(seed))
        return np.array([actual.demand(2, 16, p) for p in np.linspace(0.0, 80.0, 30)])

    a = curve(3)
    np.testing.assert_array_equal(a, curve(3))
    assert not np.allclose(a, curve(4))
    assert (np.diff(a) <= 1e-9).all() and (a >= 0).all()
    with pytest.raises(FlexgameInputError, match="rng"):
        ActualResponse(truth, noise_std=0.1)


def test_rolling_window_samples_have_the_requested_size(truth):
    frame = truth.frame()
    prices, demand = samples(frame, 20, window_days=10, end_day=12, neighbours=2)
    assert len(prices) == len(demand) == 10 * 5
    row = frame[(frame.day == 2) & (frame.quarter_hour == 18)].iloc[0]
    assert prices[0] == row.price_eur_per_mwh and demand[0] == row.demand_mw
    assert len(samples(frame, 50, window_days=5, end_day=8, neighbours=0)[0]) == 5
    # across midnight: quarter-hour 0's neighbours are in the previous day
    assert len(samples(frame, 0, window_days=4, end_day=12, neighbours=3)[0]) == 4 * 7
    with pytest.raises(FlexgameInputError, match="window"):
        samples(frame, 20, window_days=10, end_day=5)


def test_day_ahead_prices_have_the_daily_shape():
    shape = DayAheadPrices().daily_shape()
    assert shape.min() < 25 and 4 <= shape.argmin() <= 20  # the night trough around 03:30
    assert 68 <= shape.argmax() <= 78 and 45 < shape.max() <= 50  # the evening peak
    assert 40 < shape[32:40].max() <= 45  # the morning peak around 08:30
    assert (shape.reshape(24, 4) == shape.reshape(24, 4)[:, :1]).all()  # hourly products
    prices = DayAheadPrices().series(60, np.random.default_rng(0)).reshape(60, 96)
    assert 15 < prices.std(axis=0).mean() ** 2 < 60  # level (5) and noise (2) variances ~ 29


def test_reserve_bids_are_ordered_like_table_i():
    rng = np.random.default_rng(0)
    draws = [reserve_bids(rng) for _ in range(200)]
    for b in draws:
        assert (np.diff(b.up_price) > 0).all() and (np.diff(b.down_price) < 0).all()
        assert b.down_price[0] < b.up_price[0] and b.up_price[-1] == 4500
        np.testing.assert_array_equal(b.up_mw, TABLE_I.up_mw)
        np.testing.assert_array_equal(b.down_mw, TABLE_I.down_mw)
    first_up = np.array([b.up_price[0] for b in draws])
    last_down = np.array([b.down_price[-1] for b in draws])
    assert 45 < first_up.mean() < 65 and first_up.std() > 1
    assert -330 < last_down.mean() < -230
    table = reserve_bid_table(np.random.default_rng(5), 3)
    again = reserve_bids(np.random.default_rng(5))
    np.testing.assert_array_equal(bids_at(table, 0).down_price, again.down_price)
    assert MeritOrder(bids_at(table, 2)).price(150.0) < 10


def test_system_imbalance_is_seeded_with_both_signs():
    s = system_imbalance(np.random.default_rng(0), 20_000)
    np.testing.assert_array_equal(s, system_imbalance(np.random.default_rng(0), 20_000))
    assert 85 < s.std() < 115 and abs(s.mean()) < 20 and s.min() < -150 < 150 < s.max()
    assert np.corrcoef(s[:-1], s[1:])[0, 1] > 0.8


def test_csv_round_trip(tmp_path, truth):
    frame = truth.frame()
    frame.to_csv(tmp_path / "history.csv", index=False)
    back = read_history(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(back, frame, check_exact=False, rtol=1e-12)
    np.testing.assert_array_equal(samples(back, 30, window_days=12)[1],
                                  samples(frame, 30, window_days=12)[1])
    table = reserve_bid_table(np.random.default_rng(1), 4)
    table.to_csv(tmp_path / "bids.csv", index=False)
    bids = bids_at(read_reserve_bids(tmp_path / "bids.csv"), 3)
    np.testing.assert_allclose(bids.up_price, bids_at(table, 3).up_price, rtol=1e-12)
    imbalance = system_imbalance(np.random.default_rng(1), 50)
    pd.DataFrame({"quarter_hour": np.arange(50), "imbalance_mw": imbalance}).sample(
        frac=1, random_state=0).to_csv(tmp_path / "imbalance.csv", index=False)
    np.testing.assert_allclose(read_imbalance(tmp_path / "imbalance.csv"), imbalance,
                               rtol=1e-12)


@pytest.mark.parametrize("text, reader, problem", [
    ("day,quarter_hour,price_eur_per_mwh\n0,0,30\n", read_history, "missing column 'demand_mw'"),
    ("day,quarter_hour,price_eur_per_mwh,demand_mw\n0,0,30,5\n0,1,abc,5\n", read_history,
     "'price_eur_per_mwh' has a non-numeric value 'abc' on line 3"),
    ("day,quarter_hour,price_eur_per_mwh,demand_mw\n0,96,30,5\n", read_history,
     "'quarter_hour' needs integers in 0..95"),
    ("day,quarter_hour,price_eur_per_mwh,demand_mw\n0,0,,5\n", read_history,
     "'price_eur_per_mwh' has an empty value on line 2"),
    ("quarter_hour,direction,price_eur_per_mwh,quantity_mw\n0,sideways,50,100\n",
     read_reserve_bids, "'direction' has 'sideways'"),
    ("quarter_hour,imbalance\n0,5\n", read_imbalance, "missing column 'imbalance_mw'"),
    ("quarter_hour,imbalance_mw\n0,5\n2,6\n", read_imbalance, "0..1"),
])
def test_a_bad_csv_file_names_the_file_and_the_problem(tmp_path, text, reader, problem):
    path = tmp_path / "user.csv"
    path.write_text(text)
    with pytest.raises(FlexgameInputError) as error:
        reader(path)
    message = str(error.value)
    assert str(path) in message and problem in message and "\n" not in message


def test_a_missing_csv_file_is_an_input_error(tmp_path):
    with pytest.raises(FlexgameInputError, match="cannot read"):
        read_history(tmp_path / "absent.csv")
