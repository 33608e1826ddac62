"""The Pareto front of points whose every coordinate is minimised (error, FLOPs, params, ...).

One rule for the sweep's table and live panel and the report's error-vs-complexity figures.
"""

from __future__ import annotations

import math
from typing import Sequence


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points that no other point dominates (as low or lower in every
    coordinate, lower in one), ordered by their coordinates (the first, then the next, ...).

    Equal points are all on the front when one is. A point with a missing (NaN) coordinate is
    on no front and dominates nothing.
    """
    pts = [tuple(float(v) for v in p) for p in points]
    ok = [i for i, p in enumerate(pts) if not any(math.isnan(v) for v in p)]

    def dominates(a: tuple, b: tuple) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    front = [i for i in ok if not any(dominates(pts[j], pts[i]) for j in ok)]
    return sorted(front, key=lambda i: (pts[i], i))
