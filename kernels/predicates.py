"""Exact geometric predicates on the input doubles.

``orient2d(ax, ay, bx, by, cx, cy)`` returns a value whose *sign* is exactly the sign of

    | ax - cx   ay - cy |
    | bx - cx   by - cy |

that is, positive when ``a, b, c`` turn counter-clockwise (``c`` lies left of the directed line
``a -> b``), negative when clockwise, and exactly zero when the three points are collinear. It is
Shewchuk's adaptive scheme ("Adaptive Precision Floating-Point Arithmetic and Fast Robust Geometric
Predicates", 1997): the determinant is evaluated in floating point together with a forward error
bound; only when the result is smaller than the bound (the point lies within a few ulps of the line)
is it recomputed exactly, as a sum of six exact products (each split into two doubles with Dekker's
``two_product``) accumulated into a non-overlapping floating-point expansion whose largest
component carries the sign.

Nothing is rounded or snapped: the answer is the one exact arithmetic on the given doubles would give.
The guarantee holds as long as no intermediate product underflows: for coordinates that are 0 or between
1e-140 and 360 in magnitude, which every real longitude / latitude is (a value below 1e-140 degrees is
a nanometre's 10^-128th part: only junk data has one, and only against an edge through (0, 0) could
its rounding matter; GEOS's double-double arithmetic underflows there as well).

>>> orient2d(0.0, 0.0, 1.0, 0.0, 0.5, 1.0) > 0, orient2d(0.0, 0.0, 1.0, 1.0, 0.5, 0.5) == 0
(True, True)
>>> # One ulp above the line y = x through a=(12, 12), b=(24, 24): the plain float formula says 0.
>>> import numpy as np
>>> c = (0.5, float(np.nextafter(0.5, 1.0)))
>>> (12.0 - c[0]) * (24.0 - c[1]) - (12.0 - c[1]) * (24.0 - c[0])
0.0
>>> orient2d(12.0, 12.0, 24.0, 24.0, *c) > 0
True
"""

from __future__ import annotations

import numpy as np

from citygrid.kernels._jit import njit

#: Half an ulp of 1.0 (Shewchuk's ``epsilon``).
EPSILON = 2.0**-53
#: Dekker's splitter for doubles: 2**ceil(53/2) + 1.
SPLITTER = 2.0**27 + 1.0
#: Relative error bound of the floating-point determinant (Shewchuk's ``ccwerrboundA``).
CCW_ERRBOUND_A = (3.0 + 16.0 * EPSILON) * EPSILON


@njit
def two_sum(a, b):
    """``a + b`` as ``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (Knuth)."""
    s = a + b
    bv = s - a
    av = s - bv
    return s, (a - av) + (b - bv)


@njit
def _split(a):
    c = SPLITTER * a
    big = c - a
    hi = c - big
    return hi, a - hi


@njit
def two_product(a, b):
    """``a * b`` as ``(p, e)`` with ``p = fl(a * b)`` and ``p + e == a * b`` exactly (Dekker)."""
    p = a * b
    ahi, alo = _split(a)
    bhi, blo = _split(b)
    err = p - ahi * bhi
    err -= alo * bhi
    err -= ahi * blo
    return p, alo * blo - err


@njit
def _grow(expansion, n, b):
    """Add ``b`` to the non-overlapping expansion ``expansion[:n]`` (increasing magnitude, no zeros);
    return the new length. Shewchuk's Grow-Expansion with zero elimination."""
    q = b
    m = 0
    for i in range(n):
        q, h = two_sum(q, expansion[i])
        if h != 0.0:
            expansion[m] = h
            m += 1
    if q != 0.0:
        expansion[m] = q
        m += 1
    return m


#: Doubles of scratch space :func:`orient2d_exact` needs.
EXACT_SCRATCH = 24


@njit
def orient2d_exact(ax, ay, bx, by, cx, cy, scratch):
    """The exact sign (-1.0, 0.0 or 1.0) of the orientation determinant, always in exact arithmetic.

    ``scratch`` is a float64 array of at least :data:`EXACT_SCRATCH` elements that the caller owns
    (so this function allocates nothing and cannot fail: hot loops stay free of error paths).
    """
    terms = scratch[:12]
    expansion = scratch[12:24]
    p, e = two_product(ax, by)
    terms[0] = p
    terms[1] = e
    p, e = two_product(ax, cy)
    terms[2] = -p
    terms[3] = -e
    p, e = two_product(cx, by)
    terms[4] = -p
    terms[5] = -e
    p, e = two_product(ay, bx)
    terms[6] = -p
    terms[7] = -e
    p, e = two_product(ay, cx)
    terms[8] = p
    terms[9] = e
    p, e = two_product(cy, bx)
    terms[10] = p
    terms[11] = e
    n = 0
    for i in range(12):
        if terms[i] != 0.0:
            n = _grow(expansion, n, terms[i])
    if n == 0:
        return 0.0
    return 1.0 if expansion[n - 1] > 0.0 else -1.0


@njit
def orient2d(ax, ay, bx, by, cx, cy):
    """Adaptive exact orientation of ``c`` relative to the directed line ``a -> b`` (see module doc).

    Returns the floating-point determinant when its sign is certain, else the exact sign as
    -1.0 / 0.0 / 1.0; callers use only the sign.
    """
    detleft = (ax - cx) * (by - cy)
    detright = (ay - cy) * (bx - cx)
    det = detleft - detright
    if detleft > 0.0:
        if detright <= 0.0:
            return det
        detsum = detleft + detright
    elif detleft < 0.0:
        if detright >= 0.0:
            return det
        detsum = -detleft - detright
    else:
        return det
    errbound = CCW_ERRBOUND_A * detsum
    if det >= errbound or -det >= errbound:
        return det
    return orient2d_exact(ax, ay, bx, by, cx, cy, np.empty(EXACT_SCRATCH))
