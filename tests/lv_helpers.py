"""Helpers of the LV feeder tests: the same random injections on a feeder and on its series
reduction, whose users come in another order."""

from __future__ import annotations

import numpy as np


def matched_injections(full, reduced, kw: float = 9.2, seed: int = 0):
    """(injections per user of ``full`` [kW], uniform in [-kw, kw]; the same injections in
    the user order of ``reduced``; ``perm``, the position in ``reduced`` of each user of
    ``full``, so that ``values_of_reduced[perm]`` are in ``full``'s order)."""
    d = np.random.default_rng(seed).uniform(-kw, kw, len(full.user_names))
    pos = {n: k for k, n in enumerate(reduced.user_names)}
    perm = np.array([pos[n] for n in full.user_names])
    d_red = np.empty_like(d)
    d_red[perm] = d
    return d, d_red, perm
