"""Element-wise comparison and its messages."""

from __future__ import annotations

import numpy as np

from autograder.judge.compare import compare, compare_scalar, fmt

RTOL, ATOL = 1e-5, 1e-6


def test_equal_and_float32_close_arrays_pass():
    x = np.linspace(-5, 5, 50)
    assert compare(x, x.copy(), RTOL, ATOL).passed
    assert compare(np.exp(x), np.exp(x.astype(np.float32)).astype(np.float64), RTOL, ATOL).passed


def test_mismatch_message_counts_and_shows_the_worst_elements():
    expected = np.array([[0.0, 1.0], [2.0, 3.0]])
    got = expected.copy()
    got[1, 0] = 2.5
    got[0, 0] = 1e-3
    c = compare(expected, got, RTOL, ATOL, Z=np.array([[0.0, 1.0], [-4.0, 7.0]]))
    assert not c.passed and c.mismatched == 2 and c.total == 4
    assert c.max_abs == 0.5
    assert "2 of 4 elements differ (50%)" in c.message
    first = c.message.splitlines()[1]
    assert "[1, 0]" in first and "Z = -4" in first and "expected 2" in first and "got 2.5" in first


def test_nan_and_inf_never_pass_but_matching_infinities_do():
    assert not compare(np.array([1.0]), np.array([np.nan]), RTOL, ATOL).passed
    assert not compare(np.array([1.0]), np.array([np.inf]), RTOL, ATOL).passed
    assert compare(np.array([np.inf]), np.array([np.inf]), RTOL, ATOL).passed
    assert not compare(np.array([np.inf]), np.array([-np.inf]), RTOL, ATOL).passed


def test_shape_problems_are_named():
    expected = np.arange(6.0).reshape(2, 3)
    assert "transposed" in compare(expected, expected.T.copy(), RTOL, ATOL).message
    assert "flattened" in compare(expected, expected.ravel(), RTOL, ATOL).message
    c = compare(expected, np.zeros((3, 3)), RTOL, ATOL)
    assert "expected (2, 3), got (3, 3)" in c.message and "transposed" not in c.message


def test_scalar_accepts_any_size_one_array_and_names_arrays():
    assert compare_scalar(2.0, np.array([[2.0]]), RTOL, ATOL, "dLdbeta").passed
    c = compare_scalar(2.0, np.ones(3), RTOL, ATOL, "dLdbeta")
    assert not c.passed and "single number" in c.message
    assert "expected 2, got 3" in compare_scalar(2.0, np.array(3.0), RTOL, ATOL, "x").message


def test_fmt_is_short_but_exact_enough():
    assert fmt(0.0) == "0" and fmt(1.5) == "1.5" and fmt(0.0900306) == "0.0900306"
    assert fmt(float("inf")) == "inf"
    assert float(fmt(1.234567891e-7)) != 0


def test_a_sum_is_judged_against_the_size_of_its_terms():
    # Terms of size 10 cancelling to 1e-3: float32 rounding of the terms alone is ~1e-6 * 10.
    assert compare_scalar(1e-3, np.array(1e-3 + 5e-5), RTOL, ATOL, "dLdbeta", scale=10.0).passed
    assert not compare_scalar(1e-3, np.array(1e-3 + 5e-5), RTOL, ATOL, "dLdbeta").passed
    assert not compare_scalar(1e-3, np.array(1e-3 + 5e-3), RTOL, ATOL, "dLdbeta", scale=10.0).passed
