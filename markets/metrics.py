"""The registry of metrics: every number flexgame reports, with its unit, its short label and
how it is computed, in one place.

``metrics.json`` of a run, the D3.3 table, the report's summary table and the figures' axes
all read names, units and labels from :data:`METRICS`. A metric is computed where its
``source`` says; the registry only describes it. Per-operator costs are one family,
``cost_<operator>`` (``cost_TSO``, ``cost_DSO:case69``, ``cost_joint``), looked up by
:func:`metric`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One reported number.

    Attributes:
        name: its key in ``metrics.json`` and in every table.
        unit: EUR, EUR/MW, MW, %, s, - (dimensionless) or "" (a label, not a number).
        label: short column header (``ineff.``); :attr:`header` adds the unit.
        axis: axis label of figures (long form, with the unit).
        definition: how it is computed (the documents' definition where there is one).
        source: the function that computes it.
        decimals: decimals shown in tables.
    """

    name: str
    unit: str
    label: str
    definition: str
    source: str
    decimals: int = 2
    axis: str = ""

    @property
    def header(self) -> str:
        return f"{self.label} [{self.unit}]" if self.unit else self.label

    @property
    def axis_label(self) -> str:
        return self.axis or self.header


_K = "flexgame.markets.kpis.clearing_kpis"
_S = "flexgame.games.metrics.strategic_metrics"
_R = "flexgame.experiments.tso_dso"
_I = "flexgame.experiments.implicit_dr.summary"
_C = "flexgame.experiments.tso_dso.implicit_dr_first"
_A = "flexgame.markets.ac_assessment.ac_kpis"
_N = "flexgame.experiments.tso_dso.nfca_metrics"
_X = "flexgame.markets.idlfm.InterfaceExchange.kpis"

METRICS: dict[str, Metric] = {m.name: m for m in [
    # what was run
    Metric("scheme", "", "scheme", "coordination scheme (ALEXANDER D3.3 ch. 4)", _K),
    Metric("case", "", "case", "D3.3 case A-D (ALEXANDER D3.3 §4.2)", _R),
    Metric("settlement", "", "settlement", "payment rule", _R),
    Metric("reasoning", "", "reasoning", "how FSPs bid", _R),
    Metric("seed", "", "seed", "seed of every random draw", _R, 0),
    Metric("liquidity", "-", "liquidity", "share of the potential resources that bid", _R,
           axis="liquidity (share of resources bidding) [-]"),
    Metric("aggregation", "", "aggregation", "how resources are pooled into FSPs", _R),
    Metric("tso_need_mw", "MW", "TSO need", "TSO imbalance, > 0 upward", _R),
    Metric("n_bids", "-", "bids", "bids in the market", _R, 0),
    Metric("n_fsps", "-", "FSPs", "FSPs owning them", _R, 0),
    # the clearing (D3.3 §4.1.3 KPIs)
    Metric("total_cost", "EUR", "cost",
           "procurement cost of the run's outcome: what the buyers (TSO, DSOs) pay under the "
           "settlement rule; under pay-as-bid the declared cost J of D3.3 §4.1.3; strategic "
           "runs: of the strategic outcome (equilibrium_concept)", _K,
           axis="procurement cost [EUR]"),
    Metric("declared_cost", "EUR", "declared cost", "accepted MW x declared price summed over "
           "every layer (D3.3's J; the payments under pay-as-bid)", _K),
    Metric("inefficiency_pct", "%", "eta",
           "(cost - J_common) / |J_common| x 100 with J_common the truthful common market's "
           "cost at true prices on the same bids (D3.3 §4.1.3, the least cost of meeting "
           "every need); < 0 only with violations or unmet need", _K,
           axis="eta vs truthful common [%]"),
    Metric("congestions", "-", "cong.", "lines over their rating in the ex-post power flow "
           "with every activation", _K, 0),
    Metric("max_congestion_pct", "%", "max cong.", "largest excess over a line rating, in % "
           "of the rating", _K),
    Metric("voltage_violations", "-", "V viol.", "feeder buses outside their voltage limits "
           "ex post", _K, 0),
    Metric("max_voltage_violation_pct", "%", "max V viol.", "largest excess over a voltage "
           "limit, in % of the limit", _K),
    Metric("unqualified_up_pct", "%", "unqual. up", "forwarded upward distribution volume "
           "capped off by prequalification (ml03, ml06)", _K),
    Metric("unqualified_down_pct", "%", "unqual. down", "forwarded downward distribution "
           "volume capped off by prequalification (ml03, ml06)", _K),
    Metric("unmet_need_mw", "MW", "unmet", "TSO need left unmet by the market layers (their "
           "balance slacks)", _K),
    Metric("residual_need_mw", "MW", "residual need", "TSO need left at the ex-post state", _K),
    Metric("runtime_s", "s", "runtime", "wall time of one clearing of the built scheme", _K, 3),
    Metric("build_s", "s", "build", "wall time of building the scheme's models", _K, 3),
    Metric("common_cost", "EUR", "J common", "procurement cost of the common market on the "
           "same bids", _K),
    Metric("cost_<operator>", "EUR", "cost of", "procurement cost per system operator "
           "(TSO, DSO:<feeder>, joint for the common market)", _K),
    Metric("grid_safe", "", "grid safe", "no congestion and no voltage violation ex post", _K),
    Metric("feasible", "", "feasible", "grid safe and every need met", _K),
    Metric("total_payment", "EUR", "payments", "payments to FSPs under the settlement rule",
           _R),
    Metric("fsp_profit_total", "EUR", "FSP profit", "payments minus true cost of the "
           "activated MW, summed over FSPs", _R),
    # strategic runs (ALEXANDER D4.1 KER 2)
    Metric("final_profile_cost", "EUR", "J final", "procurement cost of the final profile", _R),
    Metric("final_profile_inefficiency_pct", "%", "eta final", "eta of the final profile", _R),
    Metric("truthful_cost", "EUR", "J truthful", "payments of the same scheme under "
           "truthful bids and the run's settlement rule", _S),
    Metric("strategic_cost", "EUR", "J strategic", "expected payments of the strategic "
           "outcome (equilibrium_concept)", _S),
    Metric("price_of_anarchy", "-", "price of anarchy", "dearest equilibrium found (the "
           "outcome, with one start) over the truthful cost of the same scheme", _S, 3,
           "price of anarchy [-]"),
    Metric("inefficiency_vs_truthful_common_pct", "%", "eta", "eta of the strategic outcome "
           "against the truthful common market", _S),
    Metric("truthful_inefficiency_pct", "%", "eta truthful", "eta of the scheme under "
           "truthful bids", _R),
    Metric("mean_markup", "-", "mean markup", "mean over players of the markup (declared "
           "price / true cost; additive strategies: price - cost in EUR/MW)", _S, 3,
           "mean markup [-]"),
    Metric("max_markup", "-", "max markup", "largest markup of a player", _S, 3),
    Metric("status", "", "status", "how the reasoning process ended: converged, cycle, capped "
           "(best responses), or the name of a one-shot process", _S),
    Metric("iterations", "-", "rounds", "reasoning rounds played", _S, 0),
    Metric("equilibrium_concept", "", "concept", "the solution concept of the outcome: pure "
           "Nash, mixed Nash or coarse correlated equilibrium, or what a process reached "
           "(best-response cycle, level-k, cognitive hierarchy, logit quantal response)", _S),
    Metric("epsilon", "EUR", "epsilon", "the largest expected gain of a unilateral deviation "
           "of a player in the full game against the outcome's distribution (0: an exact pure Nash "
           "equilibrium of the discrete game; a pure Nash equilibrium with epsilon > 0 is a "
           "profile of a best-response cycle within reasoning.tolerance_share)", _S),
    Metric("epsilon_standard_error", "EUR", "epsilon s.e.", "sampling error of epsilon "
           "(nan when computed exactly over the support)", _S),
    Metric("epsilon_share_pct", "%", "epsilon/cost", "epsilon in % of the outcome's cost", _S),
    Metric("support_size", "-", "support", "pure profiles with positive probability in the "
           "outcome", _S, 0),
    Metric("price_of_stability", "-", "price of stability", "cheapest equilibrium found over "
           "the truthful cost of the same scheme", _S, 3, "price of stability [-]"),
    Metric("equilibria_found", "-", "equilibria", "distinct equilibria found from the "
           "starting profiles", _S, 0),
    Metric("truthful_declared_cost", "EUR", "J truthful declared", "declared cost of truthful "
           "bids (accepted MW x true cost)", _S),
    Metric("strategic_declared_cost", "EUR", "J strategic declared", "declared cost of the "
           "strategic outcome (accepted MW x declared price)", _S),
    Metric("share_at_grid_top", "-", "at grid top", "expected share of players whose strategy "
           "is the top of the markup grid (the price cap for to_cap grids)", _S, 3),
    Metric("strategic_unmet_need_mw", "MW", "unmet strategic", "unmet need of the strategic "
           "outcome", _S),
    Metric("cost_standard_error", "EUR", "cost s.e.", "sampling error of the strategic cost "
           "(sampled mixed profiles)", _S),
    Metric("equilibrium_note", "", "how found", "how the outcome was found (dynamics, double "
           "oracle, regret matching, fallbacks)", _S),
    Metric("equilibrium_clearings", "-", "clearings for it", "clearings run to find and "
           "certify the outcome", _S, 0),
    Metric("cycle_min_price_eur_per_mw", "EUR/MW", "cycle min price", "lowest declared price "
           "of the bids of players moving in the cycle", _S),
    Metric("cycle_max_price_eur_per_mw", "EUR/MW", "cycle max price", "highest declared price "
           "of the bids of players moving in the cycle", _S),
    Metric("cycle_length", "-", "cycle", "profiles in a best-response cycle", _S, 0),
    Metric("cycle_min_markup", "-", "cycle min", "lowest markup visited in the cycle", _S, 3),
    Metric("cycle_max_markup", "-", "cycle max", "highest markup visited in the cycle", _S, 3),
    Metric("hhi_max", "-", "HHI max", "largest Herfindahl-Hirschman index of accepted MW over "
           "the market layers (0-10000)", _S, 0),
    Metric("hhi_by_layer", "-", "HHI", "HHI per market layer", _S, 0),
    Metric("pivotal_fsps", "-", "pivotal", "FSPs without whom a layer leaves more need unmet "
           "or pays more penalties", _S, 0),
    Metric("pivotal_fsps_by_layer", "", "pivotal FSPs", "the pivotal FSPs per layer", _S),
    Metric("sampling_error_max", "EUR", "sampling s.e.", "largest standard error of a sampled "
           "expected payoff", _R),
    Metric("clearings", "-", "clearings", "clearings computed (effort, not a result)", _R, 0),
    # AC ex-post check (grid_assessment=ac; flexgame.markets.ac_assessment.ac_kpis)
    Metric("congestions_ac", "-", "cong. AC", "lines over their rating in the AC power flow of "
           "every activation (FLEXGRID D5.1 §3.1's question: AC truth for the linear markets)",
           _A, 0),
    Metric("max_congestion_ac_pct", "%", "max cong. AC", "largest excess over a rating in the "
           "AC power flow, in % of the rating", _A),
    Metric("voltage_violations_ac", "-", "V viol. AC", "feeder buses outside their voltage "
           "limits in the AC power flow", _A, 0),
    Metric("max_voltage_violation_ac_pct", "%", "max V viol. AC", "largest excess over a "
           "voltage limit in the AC power flow, in % of the limit", _A),
    Metric("grid_safe_ac", "", "safe AC", "no violation in the AC power flow", _A),
    Metric("flagged_ac", "", "flagged AC", "the linear check passes and the AC power flow does "
           "not", _A),
    Metric("converged_ac", "", "AC converged", "the AC power flows converged (if not, the AC "
           "counts are the linear ones and the maxima missing)", _A),
    Metric("linear_v_error_pu", "p.u.", "lin. V err.", "largest |V_LinDistFlow - V_AC| over the "
           "feeder buses", _A, 4),
    Metric("linear_flow_error_mw", "MW", "lin. flow err.", "largest |P_linear - P_AC| over the "
           "lines (PTDF on transmission, LinDistFlow on the feeders)", _A, 3),
    Metric("linear_flow_error_pct", "%", "lin. flow err.", "the largest flow error in % of the "
           "line's rating", _A),
    # I-DLFM's TSO-DSO exchange (FLEXGRID D5.1 §2.4; flexgame.markets.idlfm)
    Metric("coordination_status", "", "I-DLFM status", "converged, or not converged (stopped "
           "at scheme.max_iterations)", _X),
    Metric("coordination_iterations", "-", "rounds", "ADMM rounds of I-DLFM's TSO-DSO "
           "exchange", _X, 0),
    Metric("coordination_messages", "-", "messages", "messages across the TSO-DSO boundary: "
           "per round the TSO sends each DSO its interface flow and price, each DSO answers "
           "with its interface flow", _X, 0),
    Metric("primal_residual_mw", "MW", "primal res.", "largest gap between the TSO's and a "
           "DSO's interface flow in the last round", _X, 6),
    Metric("dual_residual_eur_per_mw", "EUR/MW", "dual res.", "rho x largest move of a DSO's "
           "interface flow in the last round", _X, 6),
    Metric("interface_price_<feeder>", "EUR/MW", "interface price", "I-DLFM's price of a MW "
           "of upward flexibility across the feeder's interface (the ADMM multiplier)", _X),
    # implicit demand response (seed 000 KER 3; flexgame.experiments.implicit_dr)
    Metric("idr_case", "", "case", "case of the IDR test slot, C1-C5 (Vatandoust et al., "
           "EEM 2023)", _I),
    Metric("net_profit_eur", "EUR", "net", "the BRP's ex-post profit, SIM + DR Net, summed over "
           "the quarter-hours (actual demand, actual imbalance price)", _I),
    Metric("planned_net_profit_eur", "EUR", "planned net", "the BRP's ex-ante profit: what its "
           "bilevel expected under its belief", _I),
    Metric("sim_eur", "EUR", "SIM", "imbalance settlement, dt x lambda_SI x (Dp+ - Dp-)", _I),
    Metric("dr_net_eur", "EUR", "DR net", "retail margin, dt x (lambda_DR x D - lambda_DA x "
           "P_DA)", _I),
    Metric("over_activations", "-", "over-act.", "quarter-hours whose actual residual imbalance "
           "has the opposite sign of the system imbalance (seed 000 §4)", _I, 0),
    Metric("quarter_hours", "-", "quarter-hours", "quarter-hours simulated", _I, 0),
    Metric("imbalance_price", "EUR/MWh", "lambda_SI", "single imbalance price: the marginal "
           "activated reserve bid's", _I),
    Metric("retail_price", "EUR/MWh", "lambda_DR", "the BRP's retail price signal", _I),
    Metric("up_mw", "MW", "Dp+", "less consumption than day-ahead (helps a short system)", _I),
    Metric("down_mw", "MW", "Dp-", "more consumption than day-ahead (helps a long system)", _I),
    # implicit DR before the flexibility market (flexgame.experiments.idr_coupling)
    Metric("implicit_dr_bus", "", "IDR bus", "transmission bus of the BRP's implicit DR", _C, 0),
    Metric("implicit_dr_deviation_mw", "MW", "IDR deviation", "the BRP's DR demand minus its "
           "day-ahead position (> 0: more consumption); the TSO's need changes by as much", _C),
    Metric("implicit_dr_retail_price", "EUR/MWh", "IDR lambda_DR", "the BRP's retail price", _C),
    Metric("implicit_dr_imbalance_price", "EUR/MWh", "IDR lambda_SI", "the imbalance price the "
           "BRP planned with (the transmission bids' merit order)", _C),
    Metric("implicit_dr_profit_eur", "EUR", "IDR profit", "the BRP's planned net profit", _C),
    Metric("tso_need_without_implicit_dr_mw", "MW", "need w/o IDR", "the TSO's need before the "
           "BRP's response (> 0 upward)", _C),
    Metric("total_cost_without_implicit_dr", "EUR", "cost w/o IDR", "truthful procurement cost "
           "of the scheme on the system without the BRP's response", _C),
    # non-firm connection agreements before the market (nfca.enabled; flexgame.markets.nfca)
    Metric("nfca_offered_mw", "MW", "NFCA offered", "distribution volume offered before the "
           "NFCA caps, both directions", _N),
    Metric("nfca_lost_up_mw", "MW", "NFCA lost up", "upward distribution volume lost to the "
           "caps of the LV users' operating envelopes (report 001 §3.5.1, ch. 5)", _N),
    Metric("nfca_lost_down_mw", "MW", "NFCA lost down", "downward distribution volume lost to "
           "the NFCA caps", _N),
    Metric("nfca_lost_tso_usable_mw", "MW", "NFCA lost TSO", "volume lost to the NFCA caps in "
           "the direction of the TSO's need (what the TSO's market could have bought)", _N),
    Metric("nfca_lost_dso_only_mw", "MW", "NFCA lost DSO", "volume lost to the NFCA caps in "
           "the other direction (of use to the DSOs' congestion management only)", _N),
    Metric("nfca_lost_pct", "%", "NFCA lost", "volume lost to the NFCA caps in % of the "
           "distribution volume offered", _N),
    Metric("nfca_capped_bids", "-", "NFCA capped", "distribution bids whose offer exceeds its "
           "cap", _N, 0),
    Metric("nfca_lv_feeders", "-", "LV feeders", "LV feeders drawn behind the MV buses with "
           "distribution bids", _N, 0),
    Metric("nfca_users", "-", "NFCA users", "LV users on a non-firm connection agreement (the "
           "bids' portfolios)", _N, 0),
    Metric("nfca_envelopes_s", "s", "envelopes", "wall time of drawing the LV feeders and "
           "computing the envelopes and caps", _N, 3),
    Metric("truthful_cost_with_nfca", "EUR", "J truthful NFCA", "procurement cost of the "
           "scheme's truthful clearing of the capped bids (the run's settlement rule)", _N),
    Metric("truthful_cost_without_nfca", "EUR", "J truthful w/o NFCA", "procurement cost of "
           "the scheme's truthful clearing of the same bids uncapped", _N),
    Metric("nfca_cost_change", "EUR", "NFCA cost change", "truthful cost with the NFCA caps "
           "minus without", _N),
    Metric("unmet_need_with_nfca_mw", "MW", "unmet NFCA", "TSO need left unmet by the "
           "truthful clearing of the capped bids", _N),
    Metric("unmet_need_without_nfca_mw", "MW", "unmet w/o NFCA", "TSO need left unmet by the "
           "truthful clearing of the uncapped bids", _N),
    Metric("nfca_tso_cost_change", "EUR", "NFCA TSO cost change", "the TSO's procurement cost "
           "(cost_TSO) with the NFCA caps minus without, truthful (schemes with a TSO layer)",
           _N),
    Metric("nfca_dso_cost_change", "EUR", "NFCA DSO cost change", "the DSOs' procurement cost "
           "(cost_DSO:<feeder> summed) with the NFCA caps minus without, truthful (schemes "
           "with DSO layers)", _N),
    # per round (rounds.csv)
    Metric("procurement_cost_eur", "EUR", "cost", "procurement cost of a round's profile",
           "flexgame.agents.model.FlexMarketModel", axis="procurement cost [EUR]"),
]}
"""Every metric by name."""

HEADLINE = ("scheme", "case", "settlement", "total_cost", "inefficiency_pct", "congestions",
            "max_congestion_pct", "voltage_violations", "max_voltage_violation_pct",
            "unqualified_up_pct", "unqualified_down_pct", "runtime_s")
"""The keys every ``metrics.json`` starts with, in this order."""


def metric(name: str) -> Metric:
    """The metric ``name`` (``cost_TSO`` is of the ``cost_<operator>`` family,
    ``interface_price_case69`` of ``interface_price_<feeder>``).

    Raises:
        KeyError: an unregistered name.
    """
    if name in METRICS:
        return METRICS[name]
    if name.startswith("cost_"):
        family = METRICS["cost_<operator>"]
        operator = name.removeprefix("cost_")
        return Metric(name, family.unit, f"cost {operator}", family.definition, family.source)
    if name.startswith("interface_price_"):
        family = METRICS["interface_price_<feeder>"]
        feeder = name.removeprefix("interface_price_")
        return Metric(name, family.unit, f"price {feeder}", family.definition, family.source)
    raise KeyError(f"{name!r} is not a registered metric (flexgame.markets.metrics)")


def ordered(record: dict) -> dict:
    """A metrics record with the :data:`HEADLINE` keys first."""
    return {**{k: record[k] for k in HEADLINE if k in record}, **record}
