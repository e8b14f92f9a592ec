"""A notebook-style tour: one import, the default system, two schemes, one equilibrium search
and one figure. Run it as ``python examples/notebook_tour.py [OUT.png]`` (a test runs it too).
"""

import sys

import flexgame as fg

scenario = fg.Scenario.from_case("B", seed=0, liquidity=0.5, aggregation="random_pools")
common, ml03 = fg.clear(scenario, "common"), fg.clear(scenario, "ml03")
print(scenario, common, ml03, sep="\n")
outcome = fg.Game(scenario, "common").iterated_best_response(max_rounds=10)
print(outcome)
outcome.plot().savefig(sys.argv[1] if len(sys.argv) > 1 else "ibr_convergence.png")
