"""Short one-line descriptions of the markets objects (their ``repr``)."""

from __future__ import annotations

from collections.abc import Sequence


def names(items: Sequence[str], shown: int = 3) -> str:
    """``a, b, c`` or ``a, b, c, ... (7 in all)``: at most ``shown`` names, so that a repr
    stays one short line whatever the size of the system."""
    items = list(items)
    text = ", ".join(items[:shown])
    return text + (f", ... ({len(items)} in all)" if len(items) > shown else "")
