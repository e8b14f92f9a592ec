"""Data for implicit demand response (issue 13, item 5): a seeded EV smart-charging history,
the fleet's actual response for ex-post evaluation, reserve merit orders and system imbalance.

flexgame's IDR reference §3: Vatandoust et al. (EEM 2023) train their flexibility curve on
500 samples of (price, EV charging demand) from the 90 days before the test slot (Caltech
ACN-Data sessions scheduled against Belgian 2020 day-ahead prices). That data is not available
offline, so this module generates data of the same shape, every draw from an explicit
``numpy.random.Generator``; a user can replace every series by a CSV file
(:func:`read_history`, :func:`read_reserve_bids`, :func:`read_imbalance`).

Units and signs: prices [EUR/MWh], demand and power [MW] (mean over a quarter-hour), energy
[MWh], a quarter-hour is DT_H = 0.25 h, quarter-hour of day 0..95 (0 is 00:00-00:15). A system
imbalance > 0 is a generation surplus (IDR reference §1).

The model, with its defaults (every one a field of a config dataclass):

* Day-ahead prices (:class:`DayAheadPrices`): a daily shape interpolated linearly between
  anchor hours (night trough 23 EUR/MWh at 03:30, morning peak 45 at 08:30, evening peak 50 at
  18:30: the level of Belgian prices in January 2020 and of the paper's 20-50 EUR/MWh), plus a
  daily level following an AR(1) over days (std 5 EUR/MWh, persistence 0.6) and independent
  noise per product (std 2 EUR/MWh). Products are hourly (four equal quarter-hours), as on the
  2020 day-ahead market; ``product_quarter_hours=1`` makes them quarter-hourly.
* Retail signal: the price in history is the day-ahead price plus an independent normal
  perturbation per quarter-hour (std 5 EUR/MWh), so the price of one quarter-hour of day
  varies across days and its (signal, demand) samples trace the fleet's response. Each EV is
  on one of 20 tariffs (uniformly at random); a tariff adds its own offset per quarter-hour
  (normal, std 3 EUR/MWh: network charges, supplier margins) to the signal. Without tariffs
  every EV ranks the night's quarter-hours alike and the fleet's demand jumps between 0 and
  its full power; the tariffs spread it.
* EV sessions (:class:`EVFleet`): per day 2000 simulated EVs, each standing for ``ev_scale``
  = 20 identical EVs (40 000 EVs); arrival normal around 18:30 (std 2 h, within
  14:00-23:45), departure the next morning normal around 07:30 (std 1 h, within
  05:00-10:00), energy need normal 25 kWh (std 10, within 2-60 kWh), charger 3.7 / 7.4 /
  11 kW with shares 0.5 / 0.4 / 0.1. The needs are sized so that an EV charges for about a
  third of its session: the fleet's demand at 05:00 then spreads over some 20-210 MW (5-95 %
  over 90 days), the order of the paper's 86-218 MW (scale it with ``ev_scale``). A history
  of D days also simulates the sessions arriving on the day before its first day (they
  charge in its first night). A session occupies the quarter-hours from its arrival
  (inclusive) to its departure (exclusive).
* Charging (:func:`charging_schedule`): each EV minimises its cost over its session: it fills
  its quarter-hours cheapest first at full power until its need is met (the last one it uses
  partly). Its cost of a quarter-hour is its tariff's price plus an impatience times the
  hours since its arrival (exponential across EVs, mean 1 EUR/MWh per hour: a mild
  preference for charging early, which also breaks near-ties); exact ties go to the earlier
  quarter-hour. An EV whose need exceeds power x session length charges at full power
  throughout (and delivers less). Its power in quarter-hour t is clip((E - P DT k) / DT, 0, P)
  with k the number of its quarter-hours ranked before t; raising the price of t can only
  raise k, so the fleet's demand in t is non-increasing in the price of t: the property the
  inverse optimisation of a flexibility curve relies on.
* Samples (:func:`samples`): per quarter-hour of day, the (signal, demand) pairs of a rolling
  window of days before ``end_day``. One quarter-hour a day over 90 days gives 90 samples; the
  paper's ~500 are reached by pooling the ``neighbours`` quarter-hours on either side (default
  2: 5 per day, 450 over 90 days; 3 gives 630).
* Actual response (:class:`ActualResponse`): for ex-post evaluation, the fleet's demand if the
  BRP had signalled another price in one quarter-hour, every other quarter-hour keeping its
  historical signal: the generator's ground truth (the charging re-run), optionally times a
  seeded noise factor per quarter-hour; independent of any fitted flexibility curve.
* Reserve bids (:func:`reserve_bids`): Table I of the paper (``TABLE_I``), per quarter-hour with
  a common shift of every price below the cap (std 4 EUR/MWh) and every gap between
  neighbouring prices of the merit order (including the spread between the first downward and
  the first upward bid) scaled by an independent lognormal factor (sigma 0.2): up prices stay
  rising, down prices falling, the 4500 EUR/MWh cap bid keeps its price. Quantities as Table I.
* System imbalance (:func:`system_imbalance`): a stationary AR(1) per quarter-hour, mean 0,
  std 100 MW, persistence 0.9 (both signs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from flexgame.experiments.idr_cases import TABLE_I
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.imbalance import ReserveBids

DT_H = 0.25
"""A quarter-hour [h]."""
QH_PER_DAY = 96

HISTORY_COLUMNS = ("day", "quarter_hour", "price_eur_per_mwh", "demand_mw")
"""The columns of a history (a CSV file may add others, e.g. day_ahead_eur_per_mwh)."""
RESERVE_COLUMNS = ("quarter_hour", "direction", "price_eur_per_mwh", "quantity_mw")
"""The columns of a reserve bid table; quarter_hour counts from 0 at the series' start."""
IMBALANCE_COLUMNS = ("quarter_hour", "imbalance_mw")
"""The columns of a system imbalance series; quarter_hour counts from 0 at its start."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FlexgameInputError(message)


def _ar1(rng: np.random.Generator, n: int, std: float, persistence: float) -> np.ndarray:
    """A stationary AR(1) of ``n`` steps, mean 0, marginal std ``std``."""
    shocks = rng.standard_normal(n) * std * np.sqrt(1 - persistence ** 2)
    if n:
        shocks[0] /= np.sqrt(1 - persistence ** 2)  # start in the stationary distribution
    return lfilter([1.0], [1.0, -persistence], shocks)


# --- day-ahead prices ------------------------------------------------------------------------
@dataclass(frozen=True)
class DayAheadPrices:
    """A seeded day-ahead price series [EUR/MWh] (module docstring).

    Attributes:
        shape_hours, shape_eur_per_mwh: the daily shape's anchors (hours from 0 to 24, the
            last equal to the first for a smooth midnight) and their prices.
        day_level_std, day_level_persistence: the AR(1) of the daily level.
        noise_std: independent noise per product [EUR/MWh].
        product_quarter_hours: quarter-hours per product (4: hourly; divides 96).
    """

    shape_hours: tuple[float, ...] = (0.0, 3.5, 6.0, 8.5, 13.0, 18.5, 22.0, 24.0)
    shape_eur_per_mwh: tuple[float, ...] = (30.0, 23.0, 30.0, 45.0, 36.0, 50.0, 37.0, 30.0)
    day_level_std: float = 5.0
    day_level_persistence: float = 0.6
    noise_std: float = 2.0
    product_quarter_hours: int = 4

    def __post_init__(self):
        hours = np.asarray(self.shape_hours, float)
        _require(len(hours) == len(self.shape_eur_per_mwh) >= 2 and hours[0] == 0
                 and hours[-1] == 24 and (np.diff(hours) > 0).all(),
                 "DayAheadPrices: shape_hours must rise from 0 to 24, one price each")
        _require(self.day_level_std >= 0 and self.noise_std >= 0,
                 "DayAheadPrices: day_level_std and noise_std must be >= 0")
        _require(0 <= self.day_level_persistence < 1,
                 "DayAheadPrices: day_level_persistence must be in [0, 1)")
        _require(self.product_quarter_hours >= 1
                 and QH_PER_DAY % self.product_quarter_hours == 0,
                 "DayAheadPrices: product_quarter_hours must divide 96")

    def daily_shape(self) -> np.ndarray:
        """The shape's price per quarter-hour of day [EUR/MWh] (each product at its start)."""
        start = np.arange(QH_PER_DAY) // self.product_quarter_hours * self.product_quarter_hours
        return np.interp(start * DT_H, self.shape_hours, self.shape_eur_per_mwh)

    def series(self, days: int, rng: np.random.Generator) -> np.ndarray:
        """``days`` x 96 consecutive quarter-hourly prices [EUR/MWh]."""
        level = _ar1(rng, days, self.day_level_std, self.day_level_persistence)
        products = days * QH_PER_DAY // self.product_quarter_hours
        noise = np.repeat(rng.normal(0.0, self.noise_std, products), self.product_quarter_hours)
        return np.tile(self.daily_shape(), days) + np.repeat(level, QH_PER_DAY) + noise


# --- EV sessions and their charging ----------------------------------------------------------
@dataclass(frozen=True, eq=False)  # array fields
class Sessions:
    """Charging sessions on a timeline of quarter-hours (0 = the first day's 00:00).

    Attributes:
        start: the first quarter-hour of each session (arrival).
        stop: the quarter-hour it leaves at (exclusive).
        energy_mwh: its energy need [MWh].
        power_mw: its maximum charging power [MW].
        impatience: what a delay of its charging costs it [EUR/MWh per hour after arrival].
        tariff: its tariff group (the row of the price table it sees).
    """

    start: np.ndarray
    stop: np.ndarray
    energy_mwh: np.ndarray
    power_mw: np.ndarray
    impatience: np.ndarray
    tariff: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def deliverable_mwh(self) -> np.ndarray:
        """The most each session can charge: power x its length [MWh]."""
        return self.power_mw * DT_H * (self.stop - self.start)

    def active(self, quarter_hour: int) -> Sessions:
        """The sessions present in timeline quarter-hour ``quarter_hour``."""
        return self[(self.start <= quarter_hour) & (quarter_hour < self.stop)]

    def __getitem__(self, which) -> Sessions:
        """The sessions selected by a mask or a slice."""
        return Sessions(self.start[which], self.stop[which], self.energy_mwh[which],
                        self.power_mw[which], self.impatience[which], self.tariff[which])

    def slots(self) -> tuple[np.ndarray, np.ndarray]:
        """(timeline quarter-hour, valid) per session and position, padded to the longest
        session (a padding position is not valid)."""
        length = int((self.stop - self.start).max()) if len(self) else 0
        index = self.start[:, None] + np.arange(length)[None, :]
        return index, index < self.stop[:, None]


@dataclass(frozen=True)
class EVFleet:
    """The EV fleet's session statistics (module docstring); hours of day, kWh and kW.

    Attributes:
        evs_per_day: simulated sessions per day.
        ev_scale: EVs each simulated session stands for (its energy and power times this).
        arrival_mean_h, arrival_std_h, arrival_range_h: arrival time of day (normal, clipped).
        departure_mean_h, departure_std_h, departure_range_h: departure time of the next day.
        energy_mean_kwh, energy_std_kwh, energy_range_kwh: energy need per EV.
        charger_kw, charger_share: charger powers per EV and their shares (summing to 1).
        impatience_mean: mean of the exponential impatience [EUR/MWh per hour].
        tariffs: number of tariff groups (each session in one, uniformly at random).
    """

    evs_per_day: int = 2000
    ev_scale: float = 20.0
    arrival_mean_h: float = 18.5
    arrival_std_h: float = 2.0
    arrival_range_h: tuple[float, float] = (14.0, 23.75)
    departure_mean_h: float = 7.5
    departure_std_h: float = 1.0
    departure_range_h: tuple[float, float] = (5.0, 10.0)
    energy_mean_kwh: float = 25.0
    energy_std_kwh: float = 10.0
    energy_range_kwh: tuple[float, float] = (2.0, 60.0)
    charger_kw: tuple[float, ...] = (3.7, 7.4, 11.0)
    charger_share: tuple[float, ...] = (0.5, 0.4, 0.1)
    impatience_mean: float = 1.0
    tariffs: int = 20

    def __post_init__(self):
        _require(self.evs_per_day >= 1 and self.ev_scale > 0,
                 "EVFleet: evs_per_day must be >= 1 and ev_scale > 0")
        _require(0 <= self.arrival_range_h[0] <= self.arrival_range_h[1] < 24
                 and 0 <= self.departure_range_h[0] <= self.departure_range_h[1] < 24,
                 "EVFleet: arrival_range_h and departure_range_h must be ordered hours in "
                 "[0, 24)")
        _require(0 < self.energy_range_kwh[0] <= self.energy_range_kwh[1],
                 "EVFleet: energy_range_kwh must be ordered and > 0")
        _require(len(self.charger_kw) == len(self.charger_share) >= 1
                 and min(self.charger_kw) > 0 and min(self.charger_share) >= 0
                 and abs(sum(self.charger_share) - 1) < 1e-9,
                 "EVFleet: charger_kw must be > 0, one share each, the shares summing to 1")
        _require(self.impatience_mean >= 0 and self.tariffs >= 1,
                 "EVFleet: impatience_mean must be >= 0 and tariffs >= 1")

    def sessions(self, days: int, rng: np.random.Generator) -> Sessions:
        """The sessions arriving on days 0..``days``-1 (each leaves the next morning)."""
        n = days * self.evs_per_day
        day = np.repeat(np.arange(days), self.evs_per_day)
        arrival = np.clip(rng.normal(self.arrival_mean_h, self.arrival_std_h, n),
                          *self.arrival_range_h)
        departure = np.clip(rng.normal(self.departure_mean_h, self.departure_std_h, n),
                            *self.departure_range_h)
        energy_kwh = np.clip(rng.normal(self.energy_mean_kwh, self.energy_std_kwh, n),
                             *self.energy_range_kwh)
        power_kw = rng.choice(np.asarray(self.charger_kw, float), size=n,
                              p=np.asarray(self.charger_share, float))
        start = day * QH_PER_DAY + np.floor(arrival / DT_H).astype(int)
        stop = (day + 1) * QH_PER_DAY + np.floor(departure / DT_H).astype(int)
        impatience = rng.exponential(self.impatience_mean, n)
        tariff = rng.integers(0, self.tariffs, n)
        return Sessions(start, stop, energy_kwh * self.ev_scale / 1e3,
                        power_kw * self.ev_scale / 1e3, impatience, tariff)


def _power(sessions: Sessions, ranks: np.ndarray) -> np.ndarray:
    """Each session's power [MW] in a quarter-hour that ``ranks`` of its quarter-hours
    precede in its cost order (one row per session)."""
    energy, power = sessions.energy_mwh[:, None], sessions.power_mw[:, None]
    return np.clip((energy - power * DT_H * ranks) / DT_H, 0.0, power)


def _cost(sessions: Sessions, index: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """What charging in timeline quarter-hours ``index`` costs each session [EUR/MWh]: the
    price of its tariff (``prices``: one row per tariff, one column per quarter-hour) plus
    its impatience times the hours since its arrival."""
    price = prices[sessions.tariff[:, None], np.minimum(index, prices.shape[1] - 1)]
    return price + sessions.impatience[:, None] * DT_H * (index - sessions.start[:, None])


def charging_schedule(sessions: Sessions, prices: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Every session's cost-minimal charging (module docstring) against ``prices``
    [EUR/MWh], one row per tariff and one column per timeline quarter-hour (covering every
    session): (timeline quarter-hour, power [MW]) per session and position, padded positions
    at power 0."""
    index, valid = sessions.slots()
    order = np.argsort(np.where(valid, _cost(sessions, index, prices), np.inf), axis=1,
                       kind="stable")  # stable: ties keep time order
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(order.shape[1]), order.shape),
                      axis=1)
    return index, np.where(valid, _power(sessions, ranks), 0.0)


def fleet_demand(sessions: Sessions, prices: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """The fleet's demand [MW] per timeline quarter-hour (the columns of ``prices``, as in
    :func:`charging_schedule`), the sessions scheduled ``chunk`` at a time."""
    n = prices.shape[1]
    demand = np.zeros(n)
    for first in range(0, len(sessions), chunk):
        index, power = charging_schedule(sessions[first:first + chunk], prices)
        inside = index < n
        demand += np.bincount(index[inside], power[inside], minlength=n)
    return demand


# --- the history -----------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryConfig:
    """What :func:`simulate` draws.

    Attributes:
        days: days of history (numbered 0..days-1).
        prices: the day-ahead price model.
        fleet: the EV fleet.
        retail_std: std of the retail perturbation per quarter-hour [EUR/MWh].
        tariff_std: std of each tariff group's offset per quarter-hour [EUR/MWh].
    """

    days: int = 120
    prices: DayAheadPrices = field(default_factory=DayAheadPrices)
    fleet: EVFleet = field(default_factory=EVFleet)
    retail_std: float = 5.0
    tariff_std: float = 3.0

    def __post_init__(self):
        _require(self.days >= 1, f"HistoryConfig: days={self.days} must be >= 1")
        _require(self.retail_std >= 0 and self.tariff_std >= 0,
                 "HistoryConfig: retail_std and tariff_std must be >= 0")


@dataclass(frozen=True, eq=False)  # array fields
class EVHistory:
    """A simulated history with its ground truth. The timeline starts one day before day 0
    (the warm-up day whose sessions charge in day 0's night) and ends one day after the last
    (the last sessions' morning); timeline quarter-hour of (day, q) is 96 (day + 1) + q.

    Attributes:
        config: what it was drawn with.
        day_ahead: day-ahead price per timeline quarter-hour [EUR/MWh].
        signal: the retail signal [EUR/MWh].
        tariff: each tariff's offset to the signal [EUR/MWh] (tariffs x quarter-hours).
        sessions: the EV sessions.
        demand: the fleet's demand [MW].
    """

    config: HistoryConfig
    day_ahead: np.ndarray
    signal: np.ndarray
    tariff: np.ndarray
    sessions: Sessions
    demand: np.ndarray

    @staticmethod
    def timeline_index(day, quarter_hour):
        """Timeline quarter-hour of (day, quarter-hour of day)."""
        return QH_PER_DAY * (np.asarray(day) + 1) + np.asarray(quarter_hour)

    def frame(self) -> pd.DataFrame:
        """The history of days 0..days-1: one row per quarter-hour with
        :data:`HISTORY_COLUMNS` and day_ahead_eur_per_mwh."""
        days = self.config.days
        day = np.repeat(np.arange(days), QH_PER_DAY)
        quarter = np.tile(np.arange(QH_PER_DAY), days)
        t = self.timeline_index(day, quarter)
        return pd.DataFrame({"day": day, "quarter_hour": quarter,
                             "price_eur_per_mwh": self.signal[t], "demand_mw": self.demand[t],
                             "day_ahead_eur_per_mwh": self.day_ahead[t]})


def simulate(config: HistoryConfig, rng: np.random.Generator) -> EVHistory:
    """Draw prices, the retail signal and the sessions, and schedule the charging."""
    timeline_days = config.days + 2
    day_ahead = config.prices.series(timeline_days, rng)
    signal = day_ahead + rng.normal(0.0, config.retail_std, len(day_ahead))
    tariff = rng.normal(0.0, config.tariff_std, (config.fleet.tariffs, len(day_ahead)))
    sessions = config.fleet.sessions(config.days + 1, rng)
    return EVHistory(config, day_ahead, signal, tariff, sessions,
                     fleet_demand(sessions, signal + tariff))


def history(config: HistoryConfig, rng: np.random.Generator) -> pd.DataFrame:
    """The (price signal, demand) history of :func:`simulate` as a table
    (:meth:`EVHistory.frame`)."""
    return simulate(config, rng).frame()


def samples(history: pd.DataFrame, quarter_hour: int, window_days: int = 90,
            end_day: int | None = None, neighbours: int = 2
            ) -> tuple[np.ndarray, np.ndarray]:
    """The (price [EUR/MWh], demand [MW]) samples of quarter-hour of day ``quarter_hour``
    and its ``neighbours`` quarter-hours on either side (across midnight into the adjacent
    day), on the ``window_days`` days before ``end_day`` (default: after the history's last
    day), in time order: window_days x (2 neighbours + 1) samples where the history has them.

    Raises:
        FlexgameInputError: a window outside the history or a bad quarter-hour.
    """
    _require(0 <= quarter_hour < QH_PER_DAY and neighbours >= 0,
             f"samples: quarter_hour={quarter_hour} must be in 0..95 and neighbours >= 0")
    first_day, last_day = int(history.day.min()), int(history.day.max())
    end_day = last_day + 1 if end_day is None else end_day
    _require(window_days >= 1 and first_day <= end_day - window_days and end_day <= last_day + 1,
             f"samples: the window of {window_days} days before day {end_day} must lie in the "
             f"history's days {first_day}..{last_day}")
    wanted = (QH_PER_DAY * np.arange(end_day - window_days, end_day)[:, None] + quarter_hour
              + np.arange(-neighbours, neighbours + 1)[None, :]).ravel()
    rows = history.assign(t=QH_PER_DAY * history.day + history.quarter_hour).set_index("t")
    rows = rows.loc[rows.index.intersection(wanted)].sort_index()
    return rows.price_eur_per_mwh.to_numpy(float), rows.demand_mw.to_numpy(float)


# --- the actual response for ex-post evaluation ----------------------------------------------
class ActualResponse:
    """The fleet's demand [MW] at a retail price in one quarter-hour of a simulated history,
    every other quarter-hour keeping its historical signal: the charging re-run (ground
    truth), times 1 + eps with eps ~ N(0, ``noise_std``) drawn once per quarter-hour at
    construction (so the response stays non-increasing in the price), clipped to
    [0, the active sessions' power]."""

    def __init__(self, truth: EVHistory, noise_std: float = 0.0,
                 rng: np.random.Generator | None = None):
        _require(noise_std >= 0, f"ActualResponse: noise_std={noise_std} must be >= 0")
        _require(noise_std == 0 or rng is not None,
                 "ActualResponse: noise_std > 0 needs a numpy Generator rng")
        self.truth = truth
        self.factor = (1.0 + rng.normal(0.0, noise_std, len(truth.signal)) if noise_std > 0
                       else np.ones(len(truth.signal)))

    def __repr__(self) -> str:
        return (f"ActualResponse({self.truth.config.days} days, "
                f"{len(self.truth.sessions)} sessions)")

    def demand(self, day: int, quarter_hour: int, price: float) -> float:
        """The demand [MW] in (``day``, ``quarter_hour``) had the signal there been ``price``
        [EUR/MWh]."""
        _require(0 <= day < self.truth.config.days and 0 <= quarter_hour < QH_PER_DAY,
                 f"ActualResponse: (day {day}, quarter_hour {quarter_hour}) is outside the "
                 f"history's days 0..{self.truth.config.days - 1} x quarter-hours 0..95")
        t = int(EVHistory.timeline_index(day, quarter_hour))
        active = self.truth.sessions.active(t)
        index, valid = active.slots()
        prices = self.truth.signal + self.truth.tariff
        other = _cost(active, index, prices)
        prices[:, t] = price + self.truth.tariff[:, t]
        own = _cost(active, np.full((len(active), 1), t), prices)
        before = valid & (index != t) & ((other < own) | ((other == own) & (index < t)))
        exact = float(_power(active, before.sum(axis=1)[:, None]).sum())
        return float(np.clip(exact * self.factor[t], 0.0, active.power_mw.sum()))


# --- reserve bids and system imbalance -------------------------------------------------------
@dataclass(frozen=True)
class ReserveConfig:
    """Seeded variation of the reserve bids around a base merit order (module docstring).

    Attributes:
        base: the base bids (default: the paper's Table I).
        shift_std: std of the common shift of every price below the cap [EUR/MWh].
        gap_sigma: sigma of the lognormal factor on every gap between neighbouring prices.
        cap_eur_per_mwh: upward bids at or above this keep their price.
    """

    base: ReserveBids = TABLE_I
    shift_std: float = 4.0
    gap_sigma: float = 0.2
    cap_eur_per_mwh: float = 4500.0

    def __post_init__(self):
        _require(self.shift_std >= 0 and self.gap_sigma >= 0,
                 "ReserveConfig: shift_std and gap_sigma must be >= 0")
        _require((self.base.up_price < self.cap_eur_per_mwh).any(),
                 "ReserveConfig: the base needs an upward bid below cap_eur_per_mwh")


def reserve_bids(rng: np.random.Generator, config: ReserveConfig = ReserveConfig()
                 ) -> ReserveBids:
    """One quarter-hour's reserve bids: the base merit order (sorted) varied as the module
    docstring says; up bids in rising, down bids in falling price order."""
    base = config.base
    up_order = np.argsort(base.up_price, kind="stable")
    down_order = np.argsort(-base.down_price, kind="stable")
    up, down = base.up_price[up_order], base.down_price[down_order]
    capped = up >= config.cap_eur_per_mwh
    # the merit order as one line from the lowest down price to the highest uncapped up price
    line = np.r_[down[::-1], up[~capped]]
    gaps = np.diff(line) * np.exp(rng.normal(0.0, config.gap_sigma, len(line) - 1))
    middle = len(down) - 1  # the first down bid; the spread to the first up bid keeps the middle
    centre = (line[middle] + line[middle + 1]) / 2 + rng.normal(0.0, config.shift_std)
    new = np.r_[0.0, np.cumsum(gaps)]
    new += centre - (new[middle] + new[middle + 1]) / 2
    return ReserveBids(np.r_[new[len(down):], up[capped]], base.up_mw[up_order],
                       new[:len(down)][::-1], base.down_mw[down_order])


def reserve_bid_table(rng: np.random.Generator, n: int,
                      config: ReserveConfig = ReserveConfig()) -> pd.DataFrame:
    """:func:`reserve_bids` for ``n`` consecutive quarter-hours as a table of
    :data:`RESERVE_COLUMNS` (the CSV shape)."""
    parts = []
    for q in range(n):
        bids = reserve_bids(rng, config)
        for direction, price, mw in (("up", bids.up_price, bids.up_mw),
                                     ("down", bids.down_price, bids.down_mw)):
            parts.append(pd.DataFrame({"quarter_hour": q, "direction": direction,
                                       "price_eur_per_mwh": price, "quantity_mw": mw}))
    return pd.concat(parts, ignore_index=True)


def bids_at(table: pd.DataFrame, quarter_hour: int) -> ReserveBids:
    """The reserve bids of one quarter-hour of a :data:`RESERVE_COLUMNS` table."""
    rows = table[table.quarter_hour == quarter_hour]
    _require(len(rows) > 0, f"reserve bids: no bids for quarter_hour {quarter_hour}")
    return ReserveBids.from_table(rows)


@dataclass(frozen=True)
class ImbalanceConfig:
    """The system imbalance's AR(1) per quarter-hour.

    Attributes:
        mean_mw, std_mw: its mean and marginal std [MW].
        persistence: its AR(1) coefficient in [0, 1).
    """

    mean_mw: float = 0.0
    std_mw: float = 100.0
    persistence: float = 0.9

    def __post_init__(self):
        _require(self.std_mw >= 0 and 0 <= self.persistence < 1,
                 "ImbalanceConfig: std_mw must be >= 0 and persistence in [0, 1)")


def system_imbalance(rng: np.random.Generator, n: int,
                     config: ImbalanceConfig = ImbalanceConfig()) -> np.ndarray:
    """``n`` consecutive quarter-hours of system imbalance [MW] (> 0: surplus)."""
    return config.mean_mw + _ar1(rng, n, config.std_mw, config.persistence)


# --- CSV files -------------------------------------------------------------------------------
def read_series(path, columns, text_columns=()) -> pd.DataFrame:
    """Read a CSV file with (at least) ``columns``, all numeric and finite except
    ``text_columns``; other columns are kept as they are.

    Raises:
        FlexgameInputError: one line naming the file and the problem (unreadable, a missing
            column, an empty or non-numeric value with its line).
    """
    try:
        table = pd.read_csv(path, float_precision="round_trip")  # floats as written
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as error:
        raise FlexgameInputError(f"{path}: cannot read as CSV ({error})".replace("\n", " ")
                                 ) from None
    missing = [c for c in columns if c not in table.columns]
    _require(not missing, f"{path}: missing column {', '.join(map(repr, missing))} "
                          f"(needs {', '.join(columns)})")
    for column in columns:
        raw = table[column]
        empty = raw.isna().to_numpy()
        _require(not empty.any(), f"{path}: column {column!r} has an empty value on line "
                                  f"{int(np.argmax(empty)) + 2}")
        if column in text_columns:
            continue
        values = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        bad = ~np.isfinite(values)
        _require(not bad.any(), f"{path}: column {column!r} has a non-numeric value "
                                f"{raw.iloc[int(np.argmax(bad))]!r} on line "
                                f"{int(np.argmax(bad)) + 2}")
        table[column] = values
    return table


def _integers(table: pd.DataFrame, path, column: str, low: float = -np.inf,
              high: float = np.inf) -> None:
    """Check that ``column`` holds integers in [low, high] and make it an integer column."""
    values = table[column].to_numpy(float)
    bad = (values != np.round(values)) | (values < low) | (values > high)
    allowed = "integers" + (f" in {low:g}..{high:g}" if np.isfinite(high) else
                            f" >= {low:g}" if np.isfinite(low) else "")
    _require(not bad.any(), f"{path}: column {column!r} needs {allowed}; got "
                            f"{values[np.argmax(bad)]:g} on line {int(np.argmax(bad)) + 2}")
    table[column] = values.astype(int)


def read_history(path) -> pd.DataFrame:
    """A history CSV file (:data:`HISTORY_COLUMNS`; day an integer, quarter_hour 0..95)."""
    table = read_series(path, HISTORY_COLUMNS)
    _integers(table, path, "day")
    _integers(table, path, "quarter_hour", 0, QH_PER_DAY - 1)
    _require(not table.duplicated(["day", "quarter_hour"]).any(),
             f"{path}: a (day, quarter_hour) appears twice")
    return table


def read_reserve_bids(path) -> pd.DataFrame:
    """A reserve bid CSV file (:data:`RESERVE_COLUMNS`; direction up or down); one
    quarter-hour's :class:`ReserveBids` by :func:`bids_at`."""
    table = read_series(path, RESERVE_COLUMNS, text_columns=("direction",))
    _integers(table, path, "quarter_hour", 0)
    bad = ~table.direction.isin(["up", "down"]).to_numpy()
    row = int(np.argmax(bad))
    _require(not bad.any(), f"{path}: column 'direction' has {table.direction.iloc[row]!r} on "
                            f"line {row + 2}; choose up or down")
    return table


def read_imbalance(path) -> np.ndarray:
    """A system imbalance CSV file (:data:`IMBALANCE_COLUMNS`): the series [MW] in
    quarter-hour order (quarter_hour must be 0, 1, 2, ... in some order)."""
    table = read_series(path, IMBALANCE_COLUMNS)
    _integers(table, path, "quarter_hour", 0)
    table = table.sort_values("quarter_hour")
    _require((table.quarter_hour.to_numpy() == np.arange(len(table))).all(),
             f"{path}: column 'quarter_hour' must number the quarter-hours 0..{len(table) - 1}")
    return table.imbalance_mw.to_numpy(float)
