"""Numbers in messages, shown so that the comparison they state is true.

``transparency 0.69 < 0.70``, not ``0.70 < 0.7``: :func:`comparison` shows
the value and the limit with the same number of decimals, starting from the
quantity's usual precision and adding decimals until the rounded numbers
compare as the real ones do. Pure.
"""

from __future__ import annotations

import operator

_OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


def comparison(value: float, op: str, limit: float, unit: str = "", decimals: int = 0) -> str:
    """``"92% > 90%"``; ``comparison(0.695, "<", 0.7, decimals=2)`` is
    ``"0.695 < 0.700"``. ``unit`` is appended as given (``"%"``, ``" s"``)."""
    holds = _OPS[op]
    for places in range(decimals, decimals + 7):
        shown, bound = f"{value:.{places}f}", f"{limit:.{places}f}"
        if holds(float(shown), float(bound)) == holds(value, limit):
            return f"{shown}{unit} {op} {bound}{unit}"
    return f"{value!r}{unit} {op} {limit!r}{unit}"
