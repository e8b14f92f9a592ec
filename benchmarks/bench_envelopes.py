"""Operating envelopes of the IEEE European LV feeder (issue 15; report 001 ch. 5), by hand:

    python benchmarks/bench_envelopes.py

Times optimal / fair / proportional_fair on the full and the series-reduced feeder, for both
impedance models and the linearised three-phase model (``phase_model="three_phase"``, users on
their own phases), and prints the far-end user's envelope and the totals (optimal vs fair).
For the three-phase model it also prints the fair level of each direction alone (the other
at zero) and with import = export: unlike the single-phase equivalent, the static three-phase
rows couple import and export (a phase's voltage drops under its own users' import AND under
the other phases' export, through the neutral shift).
"""

from __future__ import annotations

import time

import numpy as np
from flexgame.markets.envelopes import (
    POLICIES,
    compute_envelopes,
    ratio_levels,
)
from flexgame.markets.lv_feeder import ieee_european_lv, series_reduce


def main() -> None:
    for model, phase_model in (("single_phase", "single_phase_equivalent"),
                               ("balanced", "single_phase_equivalent"),
                               ("single_phase", "three_phase")):
        t = time.perf_counter()
        full = ieee_european_lv(model, phase_model=phase_model)
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        reduced = series_reduce(full)
        t_red = time.perf_counter() - t
        label = "three_phase" if phase_model == "three_phase" else model
        print(f"\n== {label}: load {t_load:.2f} s, reduce {t_red * 1e3:.0f} ms")
        for lv in (full, reduced):
            print(f"  {lv}")
            fe = lv.far_end_user
            res = {}
            for policy in POLICIES:
                runs = [compute_envelopes(lv, policy) for _ in range(3)]
                env = runs[-1]
                res[policy] = env
                m, e = env.of(fe)
                print(f"    {policy:18s} best of 3 {min(r.runtime_s for r in runs) * 1e3:7.1f} ms"
                      f"  import {env.total_import_kw:6.1f} kW  export {env.total_export_kw:6.1f} kW"
                      f"  far-end {lv.user_names[fe]} {m:5.2f} / {e:6.2f} kW"
                      f"  users at full capacity (imp/exp) "
                      f"{int(np.sum(env.import_kw > 9.2 - 1e-6))}/"
                      f"{int(np.sum(env.export_kw > 9.2 - 1e-6))}")
            fair_c = compute_envelopes(lv, "fair", weights="capacity")
            opt, fair = res["optimal"].total_kw, res["fair"].total_kw
            print(f"    total optimal {opt:.1f} kW vs fair {fair:.1f} kW: optimal "
                  f"{100 * (opt / fair - 1):+.1f} % (fair by capacity: {fair_c.total_kw:.1f} kW)")
            if phase_model == "three_phase":
                imp, exp, both = ratio_levels(lv)
                print(f"    fair level import alone {imp:.2f} kW, export alone {exp:.2f} kW, "
                      f"import = export {both:.2f} kW (far-end user on phase "
                      f"{lv.three_phase.connections[fe]})")
    # which settings drive the far-end envelope
    print("\n== sensitivity (reduced feeder, single_phase unless stated), far-end user, "
          "proportional_fair / fair")
    for label, kw in (("default (trafo, v0 = 1.05)", {}),
                      ("no trafo, v0 = 1.0", {"include_transformer": False}),
                      ("trafo, v0 = 1.0", {"v0_pu": 1.0}),
                      ("limits 0.95-1.05, no trafo, v0 = 1.0",
                       {"include_transformer": False, "v_limits": (0.95, 1.05)}),
                      ("balanced, no trafo, v0 = 1.0",
                       {"impedance_model": "balanced", "include_transformer": False}),
                      ("three_phase (default trafo, v0 = 1.05)", {"phase_model": "three_phase"}),
                      ("three_phase, no trafo, v0 = 1.0",
                       {"phase_model": "three_phase", "include_transformer": False})):
        lv = ieee_european_lv(reduced=True, **kw)
        fe = lv.far_end_user
        pf, fa, op = (compute_envelopes(lv, p) for p in ("proportional_fair", "fair", "optimal"))
        print(f"  {label:40s} pf {pf.of(fe)[0]:5.2f}/{pf.of(fe)[1]:6.2f} kW  fair "
              f"{fa.of(fe)[0]:5.2f}/{fa.of(fe)[1]:6.2f} kW  opt/fair total "
              f"{100 * (op.total_kw / fa.total_kw - 1):+.1f} %")


if __name__ == "__main__":
    main()
