"""AC ex-post grid assessment (GitHub issue 14, item 1): Newton-Raphson power flows with every
activation applied, beside the linear check of :mod:`flexgame.markets.grid_assessment`.

The AC system is the transmission case and each feeder, coupled at the interface:

* every feeder is a pandapower network built from the :class:`~flexgame.markets.distribution.Feeder`
  data the linear check uses (same buses, same branch r and x in p.u. on the case's
  ``base_mva``, no shunts: exactly the lines LinDistFlow models), with its root an external
  grid held at the root voltage LinDistFlow assumes (``sqrt(v0_sq)``, angle 0) and one PQ load
  per bus carrying the state's net demand (``GridState.feeder_p`` / ``feeder_q``: loads minus
  DG, plus activations; negative when a bus feeds back);
* the transmission case is converted with ``pandapower.converter.pypower.from_ppc`` from the
  loaded MATPOWER tables (lines with charging, transformers with their taps, shunts, PV
  generators holding their set voltages, the reference bus an external grid); its active
  injections are those of the linear check (``GridState.tx_injection``: scaled generation minus
  lumped load, transmission activations), except that each feeder's interface draw is the AC
  one (feeder load plus its losses, active and reactive, as the feeder's external grid
  supplies it); the lumped loads keep the case's power factor per bus. The slack takes the
  residual need and the losses, as the PTDF slack takes the residual need.

Limits are the linear check's, element for element (same rows, same counts, same excess
definitions), compared with AC quantities:

* transmission lines: active power |P| [MW], the larger of the two ends, against
  ``TransmissionNetwork.rating_mw`` (the DC model's limits are active-power limits);
* feeder lines: |P| [MW] or |S| [MVA] (per ``system.feeder_line_limit``), the larger of the two
  ends, against the feeder ratings;
* feeder interfaces with a limit: |AC draw at the root| [MW];
* feeder bus voltages: |V| [p.u.] against V_min / V_max. (Transmission voltages are held by
  the generators and not checked, as in the linear check.)

A report also carries the linear report of the same state, the error of the linear model
against AC per network (``linear_error``) and ``flagged``: the linear check passes the state
and AC does not.

The pandapower networks are built once per system (:func:`ac_model`) and only their loads
change per assessment; power flows after the first reuse pandapower's internal matrices
(``recycle``).
"""

from __future__ import annotations

import logging
import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from flexgame.markets.grid_assessment import TOLERANCE, GridReport, assess_state
from flexgame.markets.grid_state import BidEffects, GridState

ASSESSMENTS = ("linear", "ac")
"""Values of the ``grid_assessment`` option: the linear check (PTDF + LinDistFlow) or AC."""

DEFAULT_KV = 138.0
"""Nominal voltage given to buses whose case has BASE_KV = 0 (case14): every quantity is in
p.u., the value only has to be positive and equal across a line."""

_RECYCLE = {"bus_pq": True, "gen": False, "trafo": False}


class _quiet:
    """A context that silences pandapower's numba and conversion warnings and log lines."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._level = logging.getLogger("pandapower").level
        logging.getLogger("pandapower").setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        logging.getLogger("pandapower").setLevel(self._level)
        self._warnings.__exit__(*exc)
        return False


def run_power_flow(net, first: bool) -> bool:
    """Newton-Raphson power flow; False when it does not converge."""
    import pandapower as pp

    try:
        with _quiet():
            if first:
                pp.runpp(net, algorithm="nr", numba=False, init="flat", max_iteration=30,
                         tolerance_mva=1e-9, recycle=dict(_RECYCLE))
            else:
                pp.runpp(net, algorithm="nr", numba=False, max_iteration=30,
                         tolerance_mva=1e-9, recycle=dict(_RECYCLE))
        return True
    except Exception as exc:  # pandapower raises LoadflowNotConverged (and others on failure)
        if type(exc).__name__ != "LoadflowNotConverged":
            raise
        return False


def case_ppc(case) -> dict:
    """A PYPOWER case dict of a loaded :class:`~flexgame.markets.case_loading.MatpowerCase`
    (MATPOWER units: MW, MVAr, p.u.; BASE_KV 0 replaced by :data:`DEFAULT_KV`)."""
    bus = case.bus.iloc[:, :13].to_numpy(float).copy()
    bus[bus[:, 9] <= 0, 9] = DEFAULT_KV
    return {"version": "2", "baseMVA": float(case.base_mva), "bus": bus,
            "gen": case.gen.iloc[:, :21].to_numpy(float).copy(),
            "branch": case.branch.iloc[:, :13].to_numpy(float).copy()}


def net_from_case(case):
    """pandapower network of a MATPOWER case by pandapower's own converter (the independent
    reference the tests compare the feeder networks with)."""
    from pandapower.converter.pypower.from_ppc import from_ppc

    with _quiet():
        return from_ppc(case_ppc(case), f_hz=50, validate_conversion=False, check_costs=False)


def feeder_net(feeder):
    """pandapower network of a feeder as LinDistFlow sees it: bus i of the net is feeder bus
    i (root 0), line k feeds bus ``feeder.child[k]`` from its parent, r and x from
    ``feeder.r_pu`` / ``x_pu`` (p.u. on ``base_mva``), no shunts; one load per bus (index =
    bus position), zero until :meth:`ACModel.assess_state` sets them."""
    import pandapower as pp

    vn = float(feeder.case.bus.BASE_KV.iloc[0]) or DEFAULT_KV
    z_base = vn**2 / feeder.base_mva  # Ohm
    net = pp.create_empty_network(name=feeder.name, f_hz=50, sn_mva=feeder.base_mva)
    for b in feeder.buses:
        pp.create_bus(net, vn_kv=vn, name=str(b))
    pp.create_ext_grid(net, 0, vm_pu=float(np.sqrt(feeder.v0_sq)), va_degree=0.0)
    for k, j in enumerate(feeder.child):
        pp.create_line_from_parameters(
            net, int(feeder.parent[j]), int(j), length_km=1.0,
            r_ohm_per_km=float(feeder.r_pu[k]) * z_base,
            x_ohm_per_km=float(feeder.x_pu[k]) * z_base, c_nf_per_km=0.0, max_i_ka=1e6)
    for i in range(feeder.n_buses):
        pp.create_load(net, i, p_mw=0.0, q_mvar=0.0)
    return net


@dataclass(frozen=True)
class ACReport(GridReport):
    """An AC ex-post assessment: the :class:`GridReport` counts from AC power flows, plus the
    comparison with the linear check of the same state.

    Attributes (besides GridReport's, which here hold AC values; ``elements`` has the linear
    check's rows with the AC ``value`` / ``excess_pct`` and ``value_linear`` /
    ``excess_linear_pct`` beside them):
        linear: the linear report of the same state.
        linear_error: one row per network (transmission, each feeder): ``max_v_error_pu``
            (max |V_ac - V_lin| over feeder buses, NaN for transmission),
            ``max_flow_error_mw`` (max |loading_ac - loading_lin| over lines, MW or MVA as the
            limit), ``max_flow_error_pct`` (the same in % of each line's rating),
            ``interface_error_mw`` (AC minus linear draw: the feeder's losses) and
            ``losses_mw`` / ``losses_mvar`` (AC losses of the network; for
            transmission the reactive figure is net of line charging).
        flagged: the linear check passes the state and AC does not.
        flagged_elements: the elements within limits linearly but violated in AC.
        converged: every power flow converged; when one does not, the counts are the linear
            ones, the maxima NaN, and the state is not grid-safe.
    """

    linear: GridReport = field(default=None, repr=False)
    linear_error: pd.DataFrame = field(default=None, repr=False)
    flagged: bool = False
    flagged_elements: pd.DataFrame = field(default=None, repr=False)
    converged: bool = True

    def __repr__(self) -> str:
        base = super().__repr__().replace("GridReport(", "ACReport(", 1)
        extra = []
        if not self.converged:
            extra.append("AC power flow did not converge")
        if self.flagged:
            extra.append(f"flagged: {len(self.flagged_elements)} violations the linear check "
                         "misses")
        if len(self.linear_error):
            err = self.linear_error
            extra.append(f"linear error max {np.nanmax(err.max_v_error_pu.to_numpy(float), initial=0):.4f}"
                         f" p.u., {np.nanmax(err.max_flow_error_mw.to_numpy(float), initial=0):.3f} MW")
        return base[:-1] + ("; " + "; ".join(extra) if extra else "") + ")"

    @property
    def grid_safe(self) -> bool:
        return self.converged and self.congestions == 0 and self.voltage_violations == 0


class ACModel:
    """The AC networks of a system, built once (:func:`ac_model` caches one per system)."""

    def __init__(self, system) -> None:
        self.system = system
        self.feeders = {f.name: feeder_net(f) for f in system.feeders}
        tx = system.transmission
        self.tx = net_from_case(tx.case)
        lookup = self.tx._from_ppc_lookups["branch"]
        self._tx_branch = [(str(t), int(e)) for t, e in
                           zip(lookup.element_type, lookup.element)]
        # one load per transmission bus (index = PTDF column), replacing the case's loads;
        # generators hold voltage at p = 0: the loads carry every active injection
        import pandapower as pp

        self.tx.load.drop(self.tx.load.index, inplace=True)
        self._tx_bus = np.asarray(tx.buses, dtype=np.int64)  # from_ppc: index = BUS_I
        for i in self._tx_bus:
            pp.create_load(self.tx, int(i), p_mw=0.0, q_mvar=0.0)
        self.tx.gen["p_mw"] = 0.0
        if len(self.tx.sgen):
            self.tx.sgen.drop(self.tx.sgen.index, inplace=True)
        case_pd = tx.case.bus.PD.to_numpy(float)
        case_qd = tx.case.bus.QD.to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(case_pd > 0, case_qd / case_pd, 0.0)
        self._tx_q_base = ratio * system.tx_load_mw  # lumped loads at the case's power factor
        self._tx_q_base[case_pd <= 0] = case_qd[case_pd <= 0]
        self._first = {name: True for name in [*self.feeders, "transmission"]}

    def __repr__(self) -> str:
        return (f"ACModel({self.system.transmission.case.name} ({len(self.tx.bus)} buses) with "
                f"{len(self.feeders)} feeder networks)")

    def _solve(self, name, net) -> bool:
        ok = run_power_flow(net, self._first[name])
        if ok:
            self._first[name] = False
        else:  # restart flat next time
            self._first[name] = True
            net["_ppc"] = None
        return ok

    def assess_state(self, state: GridState, linear: GridReport | None = None) -> ACReport:
        """AC assessment of a grid state (see the module docstring)."""
        system = self.system
        linear = linear or assess_state(system, state)
        rows, converged, errors = [], True, []
        lin_draw = np.zeros(len(system.transmission.buses))
        ac_draw_p = np.zeros_like(lin_draw)
        ac_draw_q = np.zeros_like(lin_draw)
        for f in system.feeders:
            net = self.feeders[f.name]
            p, q = state.feeder_p[f.name], state.feeder_q[f.name]
            net.load["p_mw"] = np.asarray(p, float)
            net.load["q_mvar"] = np.asarray(q, float)
            ok = self._solve(f.name, net)
            converged &= ok
            idx = system.transmission.bus_index(f.coupling_bus)
            lin_draw[idx] += f.interface_mw(p)
            if not ok:
                ac_draw_p[idx] += f.interface_mw(p)
                ac_draw_q[idx] += float(np.sum(q))
                continue
            draw_p = float(net.res_ext_grid.p_mw.sum())
            draw_q = float(net.res_ext_grid.q_mvar.sum())
            ac_draw_p[idx] += draw_p
            ac_draw_q[idx] += draw_q
            if f.has_interface_limit:
                limit = f.interface_limit_mw
                rows.append((f.name, "interface", "line", abs(draw_p), limit,
                             100.0 * (abs(draw_p) - limit) / limit))
            res = net.res_line
            if system.feeder_line_limit == "active":
                loading = np.maximum(res.p_from_mw.abs(), res.p_to_mw.abs()).to_numpy()
            else:
                loading = np.maximum(np.hypot(res.p_from_mw, res.q_from_mvar),
                                     np.hypot(res.p_to_mw, res.q_to_mvar)).to_numpy()
            for name, s, rating in zip(f.branch_names(), loading, f.rating_mva):
                rows.append((f.name, name, "line", s, rating, 100.0 * (s - rating) / rating))
            vm = net.res_bus.vm_pu.to_numpy()
            for bus, v, lo, hi in zip(f.buses, vm, f.v_min, f.v_max):
                excess = max(100.0 * (lo - v) / lo, 100.0 * (v - hi) / hi)
                rows.append((f.name, str(bus), "voltage", v, lo if v < lo else hi, excess))
            errors.append((f.name, float(res.pl_mw.sum()), float(res.ql_mvar.sum()),
                           draw_p - f.interface_mw(p)))
        tx_ok, tx = False, system.transmission
        if converged:
            load_p = -(state.tx_injection + lin_draw) + ac_draw_p
            net = self.tx
            net.load["p_mw"] = load_p
            net.load["q_mvar"] = self._tx_q_base + ac_draw_q
            tx_ok = self._solve("transmission", net)
            converged &= tx_ok
        if tx_ok:
            flows = []
            for kind, e in self._tx_branch:
                if kind == "line":
                    r = net.res_line.loc[e]
                    flows.append(max(abs(r.p_from_mw), abs(r.p_to_mw)))
                else:
                    r = net.res_trafo.loc[e]
                    flows.append(max(abs(r.p_hv_mw), abs(r.p_lv_mw)))
            tx_rows = [("transmission", name, "line", flow, rating,
                        100.0 * (flow - rating) / rating)
                       for name, flow, rating in zip(tx.line_names(), flows, tx.rating_mw)]
            rows = tx_rows + rows
            errors.insert(0, ("transmission",
                              float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()),
                              float(net.res_line.ql_mvar.sum() + net.res_trafo.ql_mvar.sum()),
                              float("nan")))
        return self._report(linear, rows, converged, errors)

    def _report(self, linear: GridReport, rows, converged: bool, losses) -> ACReport:
        lin = linear.elements
        if not converged:
            empty = lin.iloc[:0]
            return ACReport(linear.congestions, float("nan"), linear.voltage_violations,
                            float("nan"), linear.residual_need_mw, lin.copy(), linear=linear,
                            linear_error=pd.DataFrame(), flagged=linear.grid_safe,
                            flagged_elements=empty, converged=False)
        ac = pd.DataFrame(rows, columns=["network", "element", "kind", "value", "limit",
                                         "excess_pct"])
        key = ["network", "element", "kind"]
        elements = ac.merge(lin[[*key, "value", "excess_pct"]].rename(
            columns={"value": "value_linear", "excess_pct": "excess_linear_pct"}),
            on=key, how="left", validate="one_to_one")
        over = elements[elements.excess_pct > 100 * TOLERANCE]
        lines, volts = over[over.kind == "line"], over[over.kind == "voltage"]
        flagged_elements = over[~(over.excess_linear_pct > 100 * TOLERANCE)]
        err = []
        for network, loss, q_loss, iface_error in losses:
            part = elements[elements.network == network]
            branch = part[(part.kind == "line") & (part.element != "interface")]
            volt = part[part.kind == "voltage"]
            dv = (volt.value - volt.value_linear).abs()
            dflow = (branch.value - branch.value_linear).abs()
            err.append({"network": network,
                        "max_v_error_pu": float(dv.max()) if len(dv) else float("nan"),
                        "max_flow_error_mw": float(dflow.max()) if len(dflow) else 0.0,
                        "max_flow_error_pct": (float((100 * dflow / branch.limit).max())
                                               if len(dflow) else 0.0),
                        "interface_error_mw": iface_error,
                        "losses_mw": loss, "losses_mvar": q_loss})
        report = ACReport(
            congestions=len(lines),
            max_congestion_pct=float(lines.excess_pct.max()) if len(lines) else 0.0,
            voltage_violations=len(volts),
            max_voltage_violation_pct=float(volts.excess_pct.max()) if len(volts) else 0.0,
            residual_need_mw=linear.residual_need_mw,
            elements=elements, linear=linear, linear_error=pd.DataFrame(err),
            flagged=bool(linear.grid_safe and not (len(lines) == 0 and len(volts) == 0)),
            flagged_elements=flagged_elements.reset_index(drop=True), converged=True)
        return report

    def assess(self, bids: pd.DataFrame, activation_mw: np.ndarray) -> ACReport:
        """AC assessment with every bid activated by ``activation_mw`` (as
        :func:`flexgame.markets.grid_assessment.assess`)."""
        effects = BidEffects.of(self.system, bids)
        return self.assess_state(GridState.base(self.system).after(effects, activation_mw))


_MODELS: dict[int, tuple[weakref.ref, ACModel]] = {}


def ac_model(system) -> ACModel:
    """The AC networks of ``system``, built on first use and cached while the system lives.

    Raises:
        FlexgameInputError: pandapower is not installed (the ``grid`` extra).
    """
    try:
        import pandapower  # noqa: F401
    except ImportError:
        from flexgame.markets.errors import FlexgameInputError

        raise FlexgameInputError("grid_assessment=ac needs pandapower, which is not installed; "
                                 "pip install 'flexgame[grid]'") from None
    hit = _MODELS.get(id(system))
    if hit is not None and hit[0]() is system:
        return hit[1]
    model = ACModel(system)
    key = id(system)
    _MODELS[key] = (weakref.ref(system, lambda _, models=_MODELS: models.pop(key, None)), model)
    return model


def assess_ac(system, bids: pd.DataFrame, activation_mw: np.ndarray) -> ACReport:
    """AC ex-post assessment of ``activation_mw`` (MW per bid row); see the module docstring."""
    return ac_model(system).assess(bids, activation_mw)


def assess_state_ac(system, state: GridState) -> ACReport:
    """AC ex-post assessment of a grid state."""
    return ac_model(system).assess_state(state)


def assess_base_state_ac(system) -> ACReport:
    """AC assessment of the base state before any market."""
    return assess_state_ac(system, GridState.base(system))


def ac_kpis(report: ACReport) -> dict:
    """The AC columns of a clearing's KPIs (suffix ``_ac``) and the linear model's error."""
    err = report.linear_error
    def worst(col):
        if err is None or not len(err) or col not in err:
            return float("nan")
        values = err[col].to_numpy(float)
        return float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")
    return {
        "congestions_ac": int(report.congestions),
        "max_congestion_ac_pct": float(report.max_congestion_pct),
        "voltage_violations_ac": int(report.voltage_violations),
        "max_voltage_violation_ac_pct": float(report.max_voltage_violation_pct),
        "grid_safe_ac": bool(report.grid_safe),
        "flagged_ac": bool(report.flagged),
        "converged_ac": bool(report.converged),
        "linear_v_error_pu": worst("max_v_error_pu"),
        "linear_flow_error_mw": worst("max_flow_error_mw"),
        "linear_flow_error_pct": worst("max_flow_error_pct"),
    }


def assess_with(assessment: str, system, bids: pd.DataFrame,
                activation_mw: np.ndarray) -> GridReport:
    """The ex-post assessment a run asks for: ``"linear"`` (the default check) or ``"ac"``
    (an :class:`ACReport`, a GridReport with the AC counts)."""
    from flexgame.markets.errors import require_choice
    from flexgame.markets.grid_assessment import assess

    require_choice("grid_assessment", assessment, ASSESSMENTS)
    if assessment == "ac":
        return assess_ac(system, bids, activation_mw)
    return assess(system, bids, activation_mw)
