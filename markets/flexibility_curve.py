"""The flexibility curve (FC) of an implicit-DR portfolio: a stepwise decreasing demand bid.

flexgame's IDR reference §2 (lower level 2), after Vatandoust et al. (EEM 2023) and seed 000
KER 3: a must-run block of Pmin [MW], always served, then N flexible blocks of equal size
(Pmax - Pmin) / N with willingness to pay w_1 >= ... >= w_N [EUR/MWh]. At a retail price
lambda the portfolio consumes

    max  sum_b p_b (w_b - lambda)   s.t.  0 <= p_b <= (Pmax - Pmin) / N,

that is Pmin plus every block with w_b > lambda; a block with w_b = lambda may take any
fill in [0, its size] (:meth:`FlexibilityCurve.response` gives the interval). The paper's
printed FC gives the first block size Pmax in one place and divides by all blocks: the IDR
reference's correction (Pmin, N flexible blocks) is used here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexgame.markets.errors import FlexgameInputError


@dataclass(frozen=True, eq=False)  # array fields: compare their data explicitly
class FlexibilityCurve:
    """A flexibility curve.

    Attributes:
        p_min: the must-run block [MW] (>= 0).
        p_max: the demand with every block served [MW] (>= p_min).
        w: willingness to pay of the flexible blocks [EUR/MWh], non-increasing.
    """

    p_min: float
    p_max: float
    w: np.ndarray

    def __post_init__(self):
        w = np.asarray(self.w, dtype=float).ravel()
        object.__setattr__(self, "w", w)
        if not (np.isfinite([self.p_min, self.p_max]).all() and np.isfinite(w).all()):
            raise FlexgameInputError("flexibility curve: p_min, p_max and w must be finite")
        if not 0 <= self.p_min <= self.p_max:
            raise FlexgameInputError(f"flexibility curve: need 0 <= p_min <= p_max; got "
                                     f"p_min={self.p_min}, p_max={self.p_max}")
        if not len(w):
            raise FlexgameInputError("flexibility curve: w needs at least one block")
        if (np.diff(w) > 0).any():
            raise FlexgameInputError(f"flexibility curve: w must be non-increasing; got "
                                     f"{w.tolist()}")

    @property
    def n_blocks(self) -> int:
        return len(self.w)

    @property
    def block_mw(self) -> float:
        """Size of each flexible block [MW]."""
        return (self.p_max - self.p_min) / self.n_blocks

    def __repr__(self) -> str:
        return (f"FlexibilityCurve({self.p_min:g}..{self.p_max:g} MW, {self.n_blocks} blocks "
                f"of {self.block_mw:.4g} MW, w {self.w[0]:g}..{self.w[-1]:g} EUR/MWh)")

    def response(self, price: float) -> tuple[float, float]:
        """The demand [MW] at retail ``price`` [EUR/MWh]: (lowest, highest) optimal
        consumption, equal unless a block's w equals the price."""
        e = self.block_mw
        return (self.p_min + e * int(np.sum(self.w > price)),
                self.p_min + e * int(np.sum(self.w >= price)))

    def demand(self, prices) -> np.ndarray:
        """The lowest optimal demand [MW] at each of ``prices`` [EUR/MWh] (a tied block left
        empty): the curve's forecast of the portfolio's demand."""
        prices = np.asarray(prices, dtype=float)
        served = (self.w[None, :] > prices.reshape(-1, 1)).sum(axis=1)
        return (self.p_min + self.block_mw * served).reshape(prices.shape)

    # --- as data ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"p_min": float(self.p_min), "p_max": float(self.p_max), "w": self.w.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> FlexibilityCurve:
        missing = {"p_min", "p_max", "w"} - set(data)
        if missing:
            raise FlexgameInputError(f"flexibility curve: missing {sorted(missing)}")
        return cls(float(data["p_min"]), float(data["p_max"]), np.asarray(data["w"], float))

    @classmethod
    def load(cls, path) -> FlexibilityCurve:
        """Read a curve from a JSON file of :meth:`to_dict`'s shape."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise FlexgameInputError(f"flexibility curve file {path}: {error}") from None
