"""`check_derivatives`: the library function behind `indexcalc check`."""

from __future__ import annotations

import math

import numpy as np
import pytest

import indexcalc as ic
import indexcalc.check as checking
from indexcalc.check import central_difference, check_derivatives, comma_chains


def test_a_right_derivative_matches_within_the_tolerance():
    result = check_derivatives("log(x_i A_ij x_j)", "x_k")
    assert result.ok
    assert result.failure is None
    assert result.relative_error < 1e-8
    (chain,) = result.chains
    assert chain.derivative == str(ic.diff("log(x_i A_ij x_j)", "x_k"))


def test_a_wrong_derivative_fails_by_its_relative_error(monkeypatch):
    def off_by_a_thousandth(expr, variable):
        return ic.parse(f"1.001 ({ic.diff(expr, variable)})")

    monkeypatch.setattr(checking, "diff", off_by_a_thousandth)
    result = check_derivatives("x_i A_ij x_j", "x_k")
    assert not result.ok
    assert result.failure is None
    assert result.relative_error == pytest.approx(1e-3 / (1 + 1e-3), rel=0.2)


def test_a_printed_derivative_that_does_not_parse_back_fails_outright(monkeypatch):
    class Broken:
        def doprint(self, node):
            return "x_k +"

    monkeypatch.setitem(checking.PRINTERS, "unicode", Broken)
    result = check_derivatives("x_i x_i", "x_k")
    assert not result.ok
    assert "does not parse back" in result.failure
    assert math.isnan(result.relative_error)


def test_second_derivatives_are_checked_against_the_first_as_printed():
    result = check_derivatives("exp(x_i x_i)", ["x_k", "x_l"], dims={"i": 4})
    assert result.ok
    assert result.chains[0].derivative == str(ic.diff("exp(x_i x_i)", ["x_k", "x_l"]))


def test_comma_derivatives_are_found_in_the_expression():
    expr = ic.parse("f = x_i A_ij x_j; g = x_i x_i; f_{,k} + g_{,kl} y_l", var="x")
    chains = sorted(
        (str(base), [str(v) for v in variables]) for base, variables in comma_chains(expr)
    )
    assert chains == [("x_i A_ij x_j", ["x_k"]), ("x_i x_i", ["x_k", "x_l"])]
    assert check_derivatives("f = x_i A_ij x_j; f_{,kl}", var="x").failure is None


def test_nothing_to_check_is_an_error():
    with pytest.raises(ic.IndexCalcError, match="nothing to check"):
        check_derivatives("x_i x_i")


def test_central_difference_matches_a_closed_form():
    rng = np.random.default_rng(1)
    A, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    numeric = central_difference(lambda a: a["x"] @ a["A"] @ a["x"], {"A": A, "x": x}, "x")
    np.testing.assert_allclose(numeric, (A + A.T) @ x, rtol=1e-7)
