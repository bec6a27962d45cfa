"""pass@k against the closed form 1 - C(n-c, k) / C(n, k), computed exactly with math.comb."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geex.humanevalx.reporting.metrics import mean_pass_at_k, pass_at_k


def exact(n: int, c: int, k: int) -> Fraction:
    """The Codex paper's estimator as an exact rational (math.comb(a, b) is 0 when b > a)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def close(value: float, expected: Fraction) -> bool:
    return math.isclose(value, float(expected), rel_tol=1e-12, abs_tol=1e-13)


GRID = [(n, c, k) for n in range(1, 13) for c in range(0, n + 1) for k in range(1, n + 1)]


@pytest.mark.parametrize("n,c,k", GRID)
def test_matches_closed_form_small_grid(n: int, c: int, k: int) -> None:
    assert close(pass_at_k(n, c, k), exact(n, c, k))


@pytest.mark.parametrize(
    "n,c,k",
    [(200, c, k) for c in (0, 1, 2, 3, 17, 100, 150, 198, 199, 200) for k in (1, 2, 10, 50, 100, 150, 199, 200)],
)
def test_matches_closed_form_n200(n: int, c: int, k: int) -> None:
    assert close(pass_at_k(n, c, k), exact(n, c, k))


@given(st.integers(1, 400).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_matches_closed_form_property(nck: tuple[int, int, int]) -> None:
    n, c, k = nck
    value = pass_at_k(n, c, k)
    assert 0.0 <= value <= 1.0
    assert close(value, exact(n, c, k))


def test_known_values() -> None:
    # pass@1 is the plain fraction of correct samples.
    assert pass_at_k(200, 1, 1) == pytest.approx(1 / 200, rel=1e-12)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3, rel=1e-12)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6, rel=1e-12)
    # 1 - C(7,3)/C(10,3) = 1 - 35/120
    assert pass_at_k(10, 3, 3) == pytest.approx(85 / 120, rel=1e-12)


def test_edge_cases_are_exact() -> None:
    assert pass_at_k(5, 0, 1) == 0.0  # c = 0: nothing can pass
    assert pass_at_k(200, 0, 100) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0  # c = n
    assert pass_at_k(200, 200, 200) == 1.0
    assert pass_at_k(10, 8, 3) == 1.0  # n - c < k: every draw of k holds a correct one
    assert pass_at_k(200, 101, 100) == 1.0
    assert pass_at_k(10, 1, 10) == 1.0  # k = n with one correct sample
    assert pass_at_k(10, 0, 10) == 0.0  # k = n with none
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0


def test_monotone_in_c_and_k() -> None:
    n = 200
    for k in (1, 10, 100):
        values = [pass_at_k(n, c, k) for c in range(n + 1)]
        assert all(a <= b for a, b in zip(values, values[1:]))
    for c in (1, 5, 50):
        values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert all(a <= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    "n,c,k",
    [
        (5, -1, 1),  # c < 0
        (5, 6, 1),  # c > n
        (5, 2, 0),  # k < 1
        (5, 2, -3),
        (5, 2, 6),  # k > n
        (0, 0, 1),  # no samples
    ],
)
def test_invalid_arguments_raise(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_over_problems() -> None:
    counts = {"A/0": (2, 1), "A/1": (4, 0), "A/2": (4, 4)}
    assert mean_pass_at_k(counts, 1) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    # k = 2: 1 - C(1,2)/C(2,2) = 1; 0; 1
    assert mean_pass_at_k(counts, 2) == pytest.approx(2 / 3)
    # the same pairs as an iterable
    assert mean_pass_at_k(list(counts.values()), 1) == pytest.approx(0.5)


def test_mean_is_none_when_some_problem_has_fewer_than_k_samples() -> None:
    counts = {"A/0": (10, 3), "A/1": (9, 9)}
    assert mean_pass_at_k(counts, 9) is not None
    assert mean_pass_at_k(counts, 10) is None
    assert mean_pass_at_k([(1, 1)], 2) is None
    assert mean_pass_at_k({}, 1) is None
