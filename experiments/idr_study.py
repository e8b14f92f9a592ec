"""FOIO, VOIO and SBVOIO: choosing how to learn the DR's flexibility curve (seed 000 KER 3 §4).

Seed 000 (ALEXANDER D4.1) §4.1 and §4.2, restated in flexgame's IDR reference §4. A BRP learns
its implicit DR's flexibility curve by inverse optimisation (IO,
:mod:`flexgame.games.inverse_optimization`) with hyperparameters h = (number of blocks N,
training days W), and sets its retail price by its bilevel (:mod:`flexgame.games.brp`):

* FOIO picks h by forecast error: the mean absolute error of the fitted curve's demand at the
  historical price signal against the historical demand, on validation days;
* VOIO picks h by value: the BRP's realised ex-post profit on validation days;
* SBVOIO fits several curves (a median, IO's absolute loss, and pinball-loss quantile curves
  that under- and over-estimate demand), solves the scenario-based bilevel with one
  non-anticipative retail price (:func:`flexgame.games.brp.solve_scenarios`, equal weights)
  and picks h and the quantile set by validation profit. Its grid contains the median alone,
  which is VOIO, so its validation profit is at least VOIO's; VOIO's is at least FOIO's
  (both pick from the same candidates, VOIO by that profit): the study asserts both.

Ex post, for each evaluation day d and quarter-hour q: the BRP bought P^DA day-ahead, its
(median) curve's demand at the day-ahead price; it signals its retail price; the DR's
actual demand is the generator's ground truth (:class:`flexgame.experiments.idr_data.
ActualResponse`), independent of every fitted curve; the TSO clears the SIM on the residual
that demand leaves (:class:`flexgame.markets.imbalance.MeritOrder`, seeded reserve bids and
system imbalance of :mod:`flexgame.experiments.idr_data`), and the BRP is settled at that
price. An extreme over-activation is a quarter-hour whose residual has the opposite sign of
the system imbalance (the BRP's response tipped the system over).

Curves are fitted on the ``W`` days before the first day of each block of ``refit_every``
evaluation days (default: once per split), on the quarter-hour and its neighbours
(:func:`flexgame.experiments.idr_data.samples`).

Metrics of seed 000 §4 (:func:`findings`): profit of VOIO over FOIO [%] on validation and
test days, the Pearson and Spearman correlation between forecast error and profit over the
candidates, extreme over-activations per method, SBVOIO over VOIO [%], and the profit MAE
(mean absolute difference between the BRP's ex-ante and ex-post profit per quarter-hour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np
import pandas as pd
from scipy import stats

from flexgame.experiments.idr_data import (ActualResponse, EVHistory, HistoryConfig,
                                           ImbalanceConfig, ReserveConfig, reserve_bids,
                                           samples, simulate, system_imbalance)
from flexgame.games.brp import BRPSlot, settle, solve_scenarios
from flexgame.games.inverse_optimization import FlexibilityCurveEstimator
from flexgame.markets.errors import FlexgameInputError
from flexgame.markets.flexibility_curve import FlexibilityCurve
from flexgame.markets.imbalance import BOUNDARY_TOLERANCE_MW, MeritOrder, ReserveBids

MEDIAN = 0.5
"""The median scenario: fitted with IO's absolute loss (the pinball loss at 0.5 is half of
it, so the same curve)."""


@dataclass(frozen=True)
class StudyConfig:
    """A FOIO / VOIO / SBVOIO study.

    Attributes:
        history: the generated EV history (its ``days``: the evaluation days are its last).
        validation_days, test_days: evaluation days, validation first, then test.
        quarter_hours: quarter-hours of day evaluated (0..95; 24 is the paper's 06:00).
        blocks: the grid of N.
        windows: the grid of training days W.
        quantile_sets: SBVOIO's scenario sets; each must contain the median 0.5.
        neighbours: quarter-hours pooled on either side for the samples.
        refit_every: evaluation days per fit (default: one fit per split).
        max_retail_price: lambda^DR_max [EUR/MWh].
        noise_std: relative noise of the actual response (0: the ground truth).
        seed: the seed of every draw.
    """

    validation_days: int = 10
    test_days: int = 10
    quarter_hours: tuple[int, ...] = (20, 22, 24, 26)
    blocks: tuple[int, ...] = (5, 10, 20, 38)
    windows: tuple[int, ...] = (30, 60, 90)
    quantile_sets: tuple[tuple[float, ...], ...] = ((0.5,), (0.25, 0.5, 0.75), (0.1, 0.5, 0.9))
    neighbours: int = 2
    refit_every: int | None = None
    max_retail_price: float = 60.0
    noise_std: float = 0.0
    seed: int = 0
    history: HistoryConfig = field(default_factory=HistoryConfig)

    def __post_init__(self):
        evaluation = self.validation_days + self.test_days
        if min(self.validation_days, self.test_days) < 1:
            raise FlexgameInputError("idr study: validation_days and test_days must be >= 1")
        if max(self.windows) + evaluation > self.history.days:
            raise FlexgameInputError(
                f"idr study: history.days={self.history.days} must cover the longest training "
                f"window ({max(self.windows)}) plus the {evaluation} evaluation days")
        if any(MEDIAN not in q for q in self.quantile_sets) or (MEDIAN,) not in \
                tuple(tuple(q) for q in self.quantile_sets):
            raise FlexgameInputError("idr study: every quantile set must contain 0.5, and (0.5,)"
                                     " must be one of them (SBVOIO's grid then contains VOIO)")

    @property
    def splits(self) -> dict[str, range]:
        """Evaluation days per split."""
        first = self.history.days - self.validation_days - self.test_days
        return {"validation": range(first, first + self.validation_days),
                "test": range(first + self.validation_days, self.history.days)}


@dataclass(frozen=True)
class Candidate:
    """Hyperparameters: N blocks, W training days and the scenario quantiles."""

    n_blocks: int
    window: int
    quantiles: tuple[float, ...] = (MEDIAN,)

    @property
    def label(self) -> str:
        q = "" if self.quantiles == (MEDIAN,) else " q" + "/".join(f"{x:g}" for x in
                                                                   self.quantiles)
        return f"N{self.n_blocks} W{self.window}{q}"


class StudyData:
    """The study's world, drawn once from the seed: the EV history (ground truth), the
    actual response, and per evaluation (day, quarter-hour) the reserve bids and the system
    imbalance [MW]."""

    def __init__(self, config: StudyConfig):
        rng = np.random.default_rng(config.seed)
        self.config = config
        self.truth: EVHistory = simulate(config.history, rng)
        self.history = self.truth.frame()
        self.actual = ActualResponse(self.truth, config.noise_std,
                                     rng if config.noise_std > 0 else None)
        slots = [(d, q) for days in config.splits.values() for d in days
                 for q in config.quarter_hours]
        imbalance = system_imbalance(rng, len(slots), ImbalanceConfig())
        self.reserve: dict[tuple[int, int], ReserveBids] = {
            s: reserve_bids(rng, ReserveConfig()) for s in slots}
        self.imbalance = dict(zip(slots, map(float, imbalance)))
        self._curves: dict = {}

    def curve(self, n_blocks: int, window: int, quantile: float | None, quarter: int,
              end_day: int) -> FlexibilityCurve:
        """The IO curve of quarter-hour ``quarter`` from the ``window`` days before
        ``end_day`` (cached)."""
        key = (n_blocks, window, quantile, quarter, end_day)
        if key not in self._curves:
            prices, demand = samples(self.history, quarter, window, end_day,
                                     self.config.neighbours)
            fit = FlexibilityCurveEstimator(n_blocks, quantile).fit(prices, demand)
            self._curves[key] = fit.curve_
        return self._curves[key]

    def observed(self, day: int, quarter: int) -> tuple[float, float, float]:
        """(day-ahead price, historical signal [EUR/MWh], historical demand [MW])."""
        t = int(EVHistory.timeline_index(day, quarter))
        return (float(self.truth.day_ahead[t]), float(self.truth.signal[t]),
                float(self.truth.demand[t]))


def _fit_day(config: StudyConfig, split_days: range, day: int) -> int:
    """The first day of ``day``'s block of ``refit_every`` days: its curves' end day."""
    every = config.refit_every or len(split_days)
    return split_days.start + (day - split_days.start) // every * every


def evaluate(data: StudyData, candidate: Candidate, day: int, quarter: int,
             fit_day: int) -> dict:
    """One quarter-hour under a candidate: plan, actual response, SIM, ex-post settlement."""
    config = data.config
    curves = [data.curve(candidate.n_blocks, candidate.window, None if q == MEDIAN else q,
                         quarter, fit_day) for q in candidate.quantiles]
    median = curves[candidate.quantiles.index(MEDIAN)]
    day_ahead_price, signal, demand_then = data.observed(day, quarter)
    day_ahead_mw = float(median.demand(day_ahead_price))
    reserve, imbalance = data.reserve[day, quarter], data.imbalance[day, quarter]
    slots = [BRPSlot(c, reserve, imbalance, day_ahead_mw, day_ahead_price,
                     config.max_retail_price) for c in curves]
    price, plans = solve_scenarios(slots)
    planned = float(np.mean([p.net_eur for p in plans]))
    demand = data.actual.demand(day, quarter, price)
    residual = imbalance - (demand - day_ahead_mw)
    merit = MeritOrder(reserve)
    actual = settle(slots[0], price, demand, merit.price(residual, imbalance))
    return dict(day=day, quarter_hour=quarter, system_imbalance_mw=imbalance,
                retail_price=price, day_ahead_mw=day_ahead_mw, demand_mw=demand,
                planned_demand_mw=plans[candidate.quantiles.index(MEDIAN)].demand_mw,
                imbalance_price=actual.imbalance_price, net_eur=actual.net_eur,
                planned_net_eur=planned,
                forecast_error_mw=abs(float(median.demand(signal)) - demand_then),
                over_activation=bool(abs(residual) > BOUNDARY_TOLERANCE_MW
                                     and np.sign(residual) * np.sign(imbalance) < 0))


def candidates(config: StudyConfig) -> list[Candidate]:
    """Every (N, W, quantile set); the median-only ones are VOIO's and FOIO's."""
    return [Candidate(n, w, tuple(q)) for q, n, w in
            product(config.quantile_sets, config.blocks, config.windows)]


@dataclass
class StudyResult:
    """What a study found.

    Attributes:
        config: the study.
        quarters: one row per candidate, split, day and quarter-hour (:func:`evaluate`).
        grid: one row per candidate and split: profit [EUR] (ex post, summed), planned profit
            [EUR], forecast MAE [MW], over-activations, profit MAE [EUR].
        selected: per method (FOIO, VOIO, SBVOIO) its candidate and the grid's numbers on
            validation and test days.
        data: the study's world (history, actual response, fitted curves).
    """

    config: StudyConfig
    quarters: pd.DataFrame
    grid: pd.DataFrame
    selected: pd.DataFrame
    data: StudyData

    def __repr__(self) -> str:
        methods = ", ".join(f"{r.method} {r.candidate}" for r in self.selected.itertuples())
        return f"StudyResult({len(self.quarters)} evaluations; {methods})"


def _grid(quarters: pd.DataFrame) -> pd.DataFrame:
    g = quarters.assign(profit_error=(quarters.net_eur - quarters.planned_net_eur).abs())
    return g.groupby(["candidate", "median_only", "split"], sort=False).agg(
        profit_eur=("net_eur", "sum"), planned_profit_eur=("planned_net_eur", "sum"),
        forecast_mae_mw=("forecast_error_mw", "mean"),
        over_activations=("over_activation", "sum"),
        profit_mae_eur=("profit_error", "mean")).reset_index()


def _select(grid: pd.DataFrame) -> pd.DataFrame:
    validation = grid[grid.split == "validation"].set_index("candidate")
    single = validation[validation.median_only]
    choice = {"FOIO": single.forecast_mae_mw.idxmin(), "VOIO": single.profit_eur.idxmax(),
              "SBVOIO": validation.profit_eur.idxmax()}
    rows = []
    for method, candidate in choice.items():
        row = {"method": method, "candidate": candidate}
        for split in ("validation", "test"):
            numbers = grid[(grid.candidate == candidate) & (grid.split == split)].iloc[0]
            for key in ("profit_eur", "forecast_mae_mw", "over_activations", "profit_mae_eur"):
                row[f"{split}_{key}"] = numbers[key]
        rows.append(row)
    return pd.DataFrame(rows)


def run_study(config: StudyConfig, progress: bool = False) -> StudyResult:
    """Every candidate on every validation and test quarter-hour; the selections; the
    guarantees of the selection checked (module docstring)."""
    from tqdm import tqdm

    data = StudyData(config)
    rows = []
    work = [(c, split, d) for c in candidates(config)
            for split, days in config.splits.items() for d in days]
    for candidate, split, day in tqdm(work, desc="idr study", unit="day", disable=not progress):
        days = config.splits[split]
        for quarter in config.quarter_hours:
            row = evaluate(data, candidate, day, quarter, _fit_day(config, days, day))
            rows.append(dict(candidate=candidate.label,
                             median_only=candidate.quantiles == (MEDIAN,), split=split, **row))
    quarters = pd.DataFrame(rows)
    grid = _grid(quarters)
    selected = _select(grid)
    profit = selected.set_index("method").validation_profit_eur
    assert profit["VOIO"] >= profit["FOIO"] - 1e-9 and profit["SBVOIO"] >= profit["VOIO"] - 1e-9
    return StudyResult(config, quarters, grid, selected, data)


def _change_pct(new: float, old: float) -> float:
    return 100.0 * (new - old) / abs(old) if old else float("nan")


def findings(result: StudyResult) -> dict:
    """The numbers of seed 000 §4's findings from a study."""
    s = result.selected.set_index("method")
    validation = result.grid[(result.grid.split == "validation") & result.grid.median_only]
    pearson = stats.pearsonr(validation.forecast_mae_mw, validation.profit_eur)[0] \
        if len(validation) > 2 else float("nan")
    spearman = stats.spearmanr(validation.forecast_mae_mw, validation.profit_eur)[0] \
        if len(validation) > 2 else float("nan")
    out = {}
    for split in ("validation", "test"):
        out[f"voio_over_foio_profit_pct_{split}"] = _change_pct(
            s.loc["VOIO", f"{split}_profit_eur"], s.loc["FOIO", f"{split}_profit_eur"])
        out[f"sbvoio_over_voio_profit_pct_{split}"] = _change_pct(
            s.loc["SBVOIO", f"{split}_profit_eur"], s.loc["VOIO", f"{split}_profit_eur"])
        for method in ("FOIO", "VOIO", "SBVOIO"):
            out[f"over_activations_{method.lower()}_{split}"] = int(
                s.loc[method, f"{split}_over_activations"])
            out[f"profit_mae_{method.lower()}_{split}"] = float(
                s.loc[method, f"{split}_profit_mae_eur"])
    out["forecast_mae_foio_vs_voio_mw"] = (float(s.loc["FOIO", "validation_forecast_mae_mw"]),
                                           float(s.loc["VOIO", "validation_forecast_mae_mw"]))
    out["pearson_forecast_error_profit"] = float(pearson)
    out["spearman_forecast_error_profit"] = float(spearman)
    return out
