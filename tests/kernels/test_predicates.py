"""The orientation predicate is exact: its sign equals the sign of the determinant in rational
arithmetic for any doubles of the documented domain (0, or magnitudes from 1e-140 to 360: no product
underflows), including the nearly collinear ones where floating point fails."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from citygrid.kernels.predicates import EXACT_SCRATCH, orient2d, orient2d_exact, two_product, two_sum

magnitude = st.floats(min_value=1e-140, max_value=360.0, allow_nan=False, allow_infinity=False)
coordinate = st.one_of(st.just(0.0), magnitude, magnitude.map(lambda v: -v))
fraction = st.floats(min_value=-2.0, max_value=3.0, allow_nan=False, allow_infinity=False)


def sign_exact(ax, ay, bx, by, cx, cy) -> int:
    det = (Fraction(ax) - Fraction(cx)) * (Fraction(by) - Fraction(cy)) - (Fraction(ay) - Fraction(cy)) * (
        Fraction(bx) - Fraction(cx)
    )
    return (det > 0) - (det < 0)


def sign(value: float) -> int:
    return (value > 0) - (value < 0)


@settings(deadline=None)  # the first call may compile
@given(coordinate, coordinate, coordinate, coordinate, coordinate, coordinate)
@example(12.0, 12.0, 24.0, 24.0, 0.5, float(np.nextafter(0.5, 1.0)))
@example(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
@example(114.1, 22.6, 114.1, 22.6, 114.1, 22.6)
@example(-180.0, -90.0, 180.0, 90.0, 0.0, 0.0)
def test_orientation_sign_is_exact(ax, ay, bx, by, cx, cy):
    expected = sign_exact(ax, ay, bx, by, cx, cy)
    assert sign(orient2d(ax, ay, bx, by, cx, cy)) == expected
    assert sign(orient2d_exact(ax, ay, bx, by, cx, cy, np.empty(EXACT_SCRATCH))) == expected


@settings(max_examples=500, deadline=None)
@given(coordinate, coordinate, coordinate, coordinate, fraction, st.integers(-3, 3), st.integers(-3, 3))
def test_orientation_is_exact_next_to_the_line(ax, ay, bx, by, t, ulps_x, ulps_y):
    """Points interpolated on the segment (rounded: GEOS decides their side) and a few ulps off it."""
    cx = ax + t * (bx - ax)
    cy = ay + t * (by - ay)
    for _ in range(abs(ulps_x)):
        cx = float(np.nextafter(cx, np.inf if ulps_x > 0 else -np.inf))
    for _ in range(abs(ulps_y)):
        cy = float(np.nextafter(cy, np.inf if ulps_y > 0 else -np.inf))
    assume(cx == 0.0 or abs(cx) >= 1e-140)
    assume(cy == 0.0 or abs(cy) >= 1e-140)
    assert sign(orient2d(ax, ay, bx, by, cx, cy)) == sign_exact(ax, ay, bx, by, cx, cy)


def test_naive_float_formula_fails_where_the_predicate_does_not():
    """A grid of points a few ulps around (0.5, 0.5) against the line y = x through (12, 12), (24, 24):
    plain floating point gets thousands of signs wrong; the predicate none (Shewchuk's classic demo)."""
    u = 2.0**-53
    wrong_naive = 0
    for i in range(48):
        for j in range(48):
            cx, cy = 0.5 + i * u, 0.5 + j * u
            expected = sign_exact(12.0, 12.0, 24.0, 24.0, cx, cy)
            naive = (12.0 - cx) * (24.0 - cy) - (12.0 - cy) * (24.0 - cx)
            wrong_naive += sign(naive) != expected
            assert sign(orient2d(12.0, 12.0, 24.0, 24.0, cx, cy)) == expected
    assert wrong_naive > 100


@settings(deadline=None)
@given(coordinate, coordinate)
def test_error_free_transformations(a, b):
    s, e = two_sum(a, b)
    assert Fraction(s) + Fraction(e) == Fraction(a) + Fraction(b)
    p, e = two_product(a, b)
    assert Fraction(p) + Fraction(e) == Fraction(a) * Fraction(b)
