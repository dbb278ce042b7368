"""The `indexcalc` command line, run in process by `main(argv)` (issue 5).

Each test calls `indexcalc.cli.main` with its arguments and reads the exit code it returns
and what it printed. A few tests at the end run the real console script and
``python -m indexcalc`` in a subprocess, end to end.
"""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import indexcalc as ic
import indexcalc.check as checking
import indexcalc.cli as command_line
from indexcalc.cli import main
from indexcalc.printing import PRINTERS

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf")


@dataclass(frozen=True)
class Result:
    """What one run of the command line returned and printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the command line in process: ``cli(*args, stdin=None, cwd=None)``."""

    def run(*args: str, stdin: str | None = None, cwd: Path | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        if cwd is not None:
            monkeypatch.chdir(cwd)
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def printed(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The one line a successful command prints."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout.strip()


def numbers(text: str) -> np.ndarray:
    """Every number in NumPy's printing of an array, in order."""
    return np.array([float(n) for n in NUMBER.findall(text)])


def error_message(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The stderr of a user error, after checking it is one: exit 2, one message, no trace."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("indexcalc: error: ")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result.stderr


def check_errors(output: str) -> tuple[float, float]:
    """The maximum absolute and relative error `check` prints."""
    absolute = re.search(r"max abs error: (\S+)", output)
    relative = re.search(r"max rel error: (\S+)", output)
    assert absolute and relative, output
    return float(absolute[1]), float(relative[1])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(5)


# -- diff and simplify ---------------------------------------------------------------------


def test_diff_prints_the_gradient_of_a_quadratic_form(cli, rng) -> None:
    text = printed(cli("diff", "x_i A_ij x_j", "--wrt", "x_k"))
    assert text == "x_i A_ik + A_kj x_j"
    A, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    np.testing.assert_allclose(ic.evaluate(text, A=A, x=x), (A + A.T) @ x)


def test_diff_with_repeated_wrt_prints_the_hessian(cli) -> None:
    assert printed(cli("diff", "x_i A_ij x_j", "--wrt", "x_k", "--wrt", "x_l")) == "A_kl + A_lk"


def test_diff_with_symmetric_tensor_collects_the_transposed_term(cli) -> None:
    result = cli("diff", "x_i A_ij x_j", "--wrt", "x_k", "--symmetric", "A")
    assert printed(result) == "2 A_kj x_j"


def test_diff_without_wrt_carries_out_comma_derivatives(cli) -> None:
    assert printed(cli("diff", "(x_i x_i)_{,k}")) == "2 x_k"


def test_diff_format_latex_prints_latex(cli) -> None:
    result = cli("diff", "x_i A_ij x_j", "--wrt", "x_k", "--format", "latex")
    assert printed(result) == r"x_{i} \, A_{ik} + A_{kj} \, x_{j}"


def test_diff_format_ascii_prints_notation_that_parses_back_to_the_derivative(cli, rng) -> None:
    text = printed(cli("diff", "sigmoid(W_ij x_j)", "--wrt", "x_k", "--format", "ascii"))
    assert text == "sigmoid(W_ij x_j) .* (1 - sigmoid(W_ij x_j)) .* W_ik"
    W, x = rng.normal(size=(2, 3)), rng.normal(size=3)
    s = 1 / (1 + np.exp(-W @ x))
    np.testing.assert_allclose(ic.evaluate(text, W=W, x=x), (s * (1 - s))[:, None] * W)


def test_diff_format_matrix_prints_the_textbook_forms(cli) -> None:
    gradient = cli("diff", "x_i A_ij x_j", "--wrt", "x_k", "--format", "matrix")
    assert printed(gradient) == "(A + Aᵀ) x"
    factorization = "(X_ij - U_ik V_kj)(X_ij - U_il V_lj)"
    result = cli("diff", factorization, "--wrt", "V_gh", "--format", "matrix")
    assert printed(result) == "−2 Uᵀ (X − U V)"


def test_diff_format_matrix_honours_symmetric(cli) -> None:
    result = cli("diff", "x_i A_ij x_j", "--wrt", "x_k", "--symmetric", "A", "--format", "matrix")
    assert printed(result) == "2 A x"


def test_diff_format_matrix_without_a_matrix_form_prints_index_notation_with_a_note(cli) -> None:
    result = cli("diff", "T_ijk x_k", "--wrt", "x_l", "--format", "matrix")
    assert printed(result) == "T_ijl"
    assert "no matrix form" in result.stderr


def test_diff_format_python_prints_a_function_that_computes_the_derivative(cli, rng) -> None:
    source = printed(cli("diff", "x_i A_ij x_j", "--wrt", "x_k", "--format", "python"))
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # our own generated code
    A, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    np.testing.assert_allclose(namespace["derivative"](A=A, x=x), (A + A.T) @ x)


def test_simplify_collects_like_terms(cli) -> None:
    assert printed(cli("simplify", "A_kj x_j + A_kl x_l")) == "2 A_kj x_j"


@pytest.mark.parametrize(("encoding", "expected"), [("utf-8", "δ_ik"), ("ascii", "delta_ik")])
def test_unicode_output_degrades_to_ascii_when_stdout_cannot_encode_it(
    monkeypatch, encoding, expected
) -> None:
    stdout = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["diff", "x_i", "--wrt", "x_k"]) == 0
    stdout.flush()
    assert stdout.buffer.getvalue().decode(encoding).strip() == expected


# -- eval and its input forms --------------------------------------------------------------


def test_eval_reads_inline_matrix_and_vector_literals(cli) -> None:
    result = cli("eval", "A_ij x_j", "A=[[1,2],[3,4]]", "x=[1,1]")
    np.testing.assert_array_equal(numbers(printed(result)), [3, 7])


def test_eval_reads_scalar_literals_with_exponents_and_leading_points(cli) -> None:
    result = cli("eval", "c x_i x_i", "c=2.5", "x=[.5, -1e-3]")
    np.testing.assert_allclose(numbers(printed(result)), [2.5 * (0.25 + 1e-6)])


def test_eval_reads_npy_and_saves_the_result_in_the_out_order(cli, tmp_path, rng) -> None:
    A = rng.normal(size=(2, 3))
    np.save(tmp_path / "A.npy", A)
    result = cli("eval", "A_ij", "A=A.npy", "--out", "ji", "--save", "At.npy", cwd=tmp_path)
    assert printed(result) == ""
    np.testing.assert_array_equal(np.load(tmp_path / "At.npy"), A.T)


def test_eval_reads_npz_by_key_and_a_single_array_npz_without_key(cli, tmp_path, rng) -> None:
    A, x = rng.normal(size=(3, 3)), rng.normal(size=3)
    np.savez(tmp_path / "arrays.npz", A=A, other=np.zeros(2))
    np.savez(tmp_path / "x.npz", x)
    result = cli("eval", "A_ij x_j", "A=arrays.npz:A", "x=x.npz", "--save", "y.npy", cwd=tmp_path)
    printed(result)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), A @ x)


def test_eval_reads_csv_with_commas_and_txt_with_whitespace(cli, tmp_path) -> None:
    (tmp_path / "A.csv").write_text("1,2\n3,4\n")
    (tmp_path / "x.txt").write_text("5 6\n")
    result = cli("eval", "A_ij x_j", "A=A.csv", "x=x.txt", cwd=tmp_path)
    np.testing.assert_array_equal(numbers(printed(result)), [17, 39])


def test_eval_reads_the_expression_from_standard_input(cli) -> None:
    result = cli("eval", "-", "A=[[1,2],[3,4]]", "x=[1,-1]", stdin="A_ij x_j\n")
    np.testing.assert_array_equal(numbers(printed(result)), [-1, -1])


def test_eval_reads_a_program_with_definitions_from_a_file(cli, tmp_path) -> None:
    (tmp_path / "norm.ic").write_text("a_i = A_ij x_j  # the image\na_i a_i\n")
    result = cli("eval", "@norm.ic", "A=[[1,2],[3,4]]", "x=[1,1]", cwd=tmp_path)
    np.testing.assert_array_equal(numbers(printed(result)), [3**2 + 7**2])


def test_eval_dims_size_indices_no_array_fixes(cli) -> None:
    result = cli("eval", "delta_ij", "--dims", "i=3", "--dims", "j=3")
    np.testing.assert_array_equal(numbers(printed(result)).reshape(3, 3), np.eye(3))


# -- check ---------------------------------------------------------------------------------


def test_check_passes_for_a_correct_gradient(cli) -> None:
    result = cli("check", "log(x_i A_ij x_j)", "--wrt", "x_k")
    output = printed(result)
    absolute, relative = check_errors(output)
    assert relative <= absolute < 1e-6
    assert "derivative: (x_i A_ik + A_kj x_j) / (x_i A_ij x_j)" in output


def test_check_passes_for_successive_derivatives_with_dims(cli) -> None:
    result = cli("check", "tanh(W_ij x_j)", "--wrt", "W_gh", "--wrt", "x_k", "--dims", "i=2,j=4")
    assert check_errors(printed(result))[1] < 1e-6


def test_check_fails_with_exit_1_when_the_derivative_is_corrupted(cli, monkeypatch) -> None:
    def off_by_a_thousandth(expr, variable):
        return ic.parse(f"1.001 ({ic.diff(expr, variable)})")

    monkeypatch.setattr(checking, "diff", off_by_a_thousandth)
    result = cli("check", "log(x_i A_ij x_j)", "--wrt", "x_k")
    assert result.returncode == 1, result.stderr
    # The derivative is scaled by 1.001, so the relative error is about 1e-3 of its size.
    assert 1e-4 < check_errors(result.stdout)[1] < 1e-3
    assert "FAILED" in result.stdout
    assert "Traceback" not in result.stderr


# -- errors --------------------------------------------------------------------------------


def test_parse_error_shows_the_source_line_with_a_caret(cli) -> None:
    stderr = error_message(cli("diff", "x_i +* y_i", "--wrt", "x_k"))
    assert "unexpected '*'" in stderr
    assert "\nx_i +* y_i\n     ^\n" in stderr


def test_missing_array_is_named(cli) -> None:
    stderr = error_message(cli("eval", "A_ij x_j", "x=[1,2]"))
    assert "missing array A" in stderr


@pytest.mark.parametrize(
    ("literal", "reason"),
    [("x=[1,2", "not a number or a list of numbers"), ("x=[[1,2],[3]]", "different lengths")],
)
def test_bad_literal_is_a_user_error(cli, literal, reason) -> None:
    stderr = error_message(cli("eval", "x_i", literal))
    assert "array 'x'" in stderr
    assert reason in stderr


@pytest.mark.parametrize("args", [("eval", "x_i", "x=absent.npy"), ("simplify", "@absent.ic")])
def test_missing_file_is_a_user_error(cli, tmp_path, args) -> None:
    stderr = error_message(cli(*args, cwd=tmp_path))
    assert "absent" in stderr
    assert "no such file" in stderr


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "delta_ij", "--dims", "ij=3"),
        ("check", "x_i x_i", "--wrt", "x_k", "--dims", "i=three"),
    ],
)
def test_bad_dims_is_a_user_error(cli, args) -> None:
    assert "--dims" in error_message(cli(*args))


def test_argument_without_name_is_a_user_error(cli) -> None:
    assert "NAME=VALUE" in error_message(cli("eval", "x_i", "[1,2]"))


def test_npz_key_that_is_absent_lists_the_keys(cli, tmp_path) -> None:
    np.savez(tmp_path / "arrays.npz", A=np.eye(2), b=np.ones(2))
    stderr = error_message(cli("eval", "A_ij", "A=arrays.npz:C", cwd=tmp_path))
    assert "no array 'C'" in stderr
    assert "A, b" in stderr


def test_arrays_of_inconsistent_sizes_are_a_user_error(cli) -> None:
    stderr = error_message(cli("eval", "x_i y_i", "x=[1,2]", "y=[1,2,3]"))
    assert "index 'i'" in stderr


def test_unknown_subcommand_is_a_usage_error_with_exit_2(cli) -> None:
    result = cli("frobnicate")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_adds_the_traceback_and_keeps_the_exit_code(cli) -> None:
    result = cli("--debug", "eval", "A_ij x_j", "x=[1,2]")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "indexcalc: error: missing array A" in result.stderr


# -- help and internal errors ----------------------------------------------------


@pytest.mark.parametrize("command", ["diff", "simplify", "eval", "check"])
def test_every_subcommand_help_shows_examples(capsys, command) -> None:
    assert main([command, "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "examples:" in help_text
    assert f"  indexcalc {command} " in help_text


def test_top_level_help_documents_the_exit_codes(capsys) -> None:
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    for code, meaning in [("0", "success"), ("1", "check"), ("2", "user error"), ("3", "internal")]:
        assert re.search(rf"^  {code}\s+{meaning}", help_text, re.MULTILINE), code


def test_unexpected_exception_is_an_internal_error_with_exit_3(capsys, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ic, "simplify", broken)
    assert main(["simplify", "x_i"]) == 3
    stderr = capsys.readouterr().err
    assert stderr.startswith("indexcalc: internal error: RuntimeError: boom")
    assert "Traceback" not in stderr


# -- printed results are the derivative (issue 12) ----------------------------------------

RAYLEIGH = "x_i A_ij x_j / (x_k x_k)"
RAYLEIGH_ARRAYS = ("A=[[1,2],[2,4]]", "x=[1,2]")
RAYLEIGH_HESSIAN = [[-1.6, 0.8], [0.8, -0.4]]


def test_printed_hessian_evaluates_to_the_comma_form_on_the_command_line(cli) -> None:
    text = printed(cli("diff", RAYLEIGH, "--wrt", "x_m", "--wrt", "x_n"))
    from_text = numbers(printed(cli("eval", text, *RAYLEIGH_ARRAYS, "--out", "mn")))
    comma = f"f = {RAYLEIGH}; f_{{,mn}}"
    from_comma = numbers(printed(cli("eval", comma, *RAYLEIGH_ARRAYS, "--out", "mn")))
    np.testing.assert_allclose(from_text.reshape(2, 2), RAYLEIGH_HESSIAN)
    np.testing.assert_allclose(from_comma.reshape(2, 2), RAYLEIGH_HESSIAN)


def test_eval_with_wrt_evaluates_the_derivative(cli) -> None:
    result = cli("eval", RAYLEIGH, "--wrt", "x_m", "--wrt", "x_n", *RAYLEIGH_ARRAYS)
    np.testing.assert_allclose(numbers(printed(result)).reshape(2, 2), RAYLEIGH_HESSIAN)


def test_eval_with_wrt_sizes_derivative_indices_from_the_variables_array(cli) -> None:
    weights, x = np.arange(6.0).reshape(3, 2), np.array([1.0, 2.0])
    result = cli("eval", "W_ij x_j", "--wrt", "W_ab", "W=[[0,1],[2,3],[4,5]]", "x=[1,2]")
    assert "does not use" not in result.stderr
    expected = np.einsum("ia,b->abi", np.eye(3), x)  # ∂(W x)_i/∂W_ab = δ_ia x_b
    assert weights.shape == (3, 2)
    np.testing.assert_allclose(numbers(printed(result)).reshape(3, 2, 3), expected)


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "(x_i A_ij x_j)_{,k}", "--var", "x", "A=[[1,2],[3,4]]", "x=[1,1]"),
        ("eval", "--var", "x", "(x_i A_ij x_j)_{,k}", "A=[[1,2],[3,4]]", "x=[1,1]"),
        ("eval", "(x_i A_ij x_j)_{,k}", "A=[[1,2],[3,4]]", "--var", "x", "x=[1,1]"),
        ("eval", "(x_i A_ij x_j)_{,k}", "A=[[1,2],[3,4]]", "x=[1,1]", "--var", "x"),
        ("--debug", "eval", "(x_i A_ij x_j)_{,k}", "A=[[1,2],[3,4]]", "--out", "k", "x=[1,1]"),
    ],
)
def test_options_may_come_anywhere_among_the_arguments(cli, args) -> None:
    np.testing.assert_allclose(numbers(printed(cli(*args))), [7.0, 13.0])  # (A + Aᵀ) x


def test_check_accepts_a_comma_derivative_program_without_wrt(cli) -> None:
    result = cli("check", f"f = {RAYLEIGH}; f_{{,mn}}")
    output = printed(result)
    assert check_errors(output)[1] < 1e-6
    assert "derivative: " in output and "δ_mn" in output


def test_check_without_wrt_or_comma_derivative_says_what_to_give(cli) -> None:
    stderr = error_message(cli("check", "x_i A_ij x_j"))
    assert "give --wrt VAR, or write a comma derivative" in stderr


def _printing(transform):
    """The Unicode printer, with its text passed through `transform`."""

    class Printer(PRINTERS["unicode"]):
        def doprint(self, node) -> str:
            return transform(super().doprint(node))

    return Printer


def test_check_compares_the_printed_text_so_a_printing_bug_fails(capsys, monkeypatch) -> None:
    """A printer that adds a factor of 2 must fail the check, though the derivative is right."""
    monkeypatch.setitem(checking.PRINTERS, "unicode", _printing(lambda text: f"2 ({text})"))
    assert main(["check", "log(x_i A_ij x_j)", "--wrt", "x_k"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_check_fails_when_the_printed_text_does_not_parse_back(capsys, monkeypatch) -> None:
    monkeypatch.setitem(checking.PRINTERS, "unicode", _printing(lambda text: "x_i +"))
    assert main(["check", "x_i x_i", "--wrt", "x_k"]) == 1
    assert "does not parse back" in capsys.readouterr().out


def test_size_error_names_the_command_line_option(cli) -> None:
    stderr = error_message(cli("eval", "delta_ij"))
    assert re.search(r"pass it with --dims [ij]=N", stderr), stderr
    assert "dims={" not in stderr


def test_trace_derivative_evaluates_from_the_matrix_alone(cli) -> None:
    result = cli("eval", "A_ii", "--wrt", "A_pq", "A=[[1,2],[3,4]]")
    np.testing.assert_array_equal(numbers(printed(result)).reshape(2, 2), np.eye(2))


def test_transpose_written_as_a_power_is_noted_with_the_index_form(cli) -> None:
    result = cli("diff", "x^T A x", "--wrt", "x")
    assert result.returncode == 0
    assert "power of a scalar named T" in result.stderr
    assert "x_i A_ij x_j" in result.stderr
    assert "Traceback" not in result.stderr


# -- no input makes a bug (issue 15): every input error exits 2, Ctrl-C exits 130 ---------


def literal(values) -> str:
    """An inline literal of a vector, as a user would type it."""
    return "[" + ",".join(f"{v:g}" for v in values) + "]"


def write_npy_header(path: Path, shape: tuple[int, ...], data: bytes = b"", descr="<f8") -> None:
    """A .npy file whose header claims `shape`, followed by `data` whatever its size."""
    with open(path, "wb") as file:
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(file, header)
        file.write(data)


def one_error(result: Result) -> str:
    """`error_message`, also checking the error is said once."""
    stderr = error_message(result)
    assert stderr.count("indexcalc: error:") == 1, stderr
    return stderr


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [("x_i x_i", literal([1] * 200), [200.0]), ("x", "1" * 300, [float("1" * 300)])],
)
def test_a_literal_too_long_for_a_file_name_is_read_as_a_literal(
    cli, expression, value, expected
) -> None:
    assert len(value) > 255  # NAME_MAX: tried as a file name, it raised ENAMETOOLONG
    result = cli("eval", expression, f"x={value}")
    np.testing.assert_allclose(numbers(printed(result)), expected)


def test_a_file_name_too_long_is_a_user_error_that_names_the_file(cli) -> None:
    stderr = one_error(cli("eval", "x_i", "x=" + "a" * 300 + ".npy"))
    assert "File name too long" in stderr
    assert "'aaaaaaaaaa" in stderr
    assert len(stderr) < 300  # the name is shortened, not repeated whole


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_endless_expression_file_is_refused_at_the_limit(cli) -> None:
    stderr = one_error(cli("simplify", "@/dev/zero"))
    assert (
        f"cannot read '/dev/zero': it is longer than {command_line.MAX_NOTATION_CHARS:,}" in stderr
    )


def test_standard_input_is_read_up_to_the_limit_and_refused_beyond(cli, monkeypatch) -> None:
    monkeypatch.setattr(command_line, "MAX_NOTATION_CHARS", 10)
    assert printed(cli("simplify", "-", stdin="x_i + x_i ")) == "2 x_i"  # 10 characters
    stderr = one_error(cli("simplify", "-", stdin="x_i + x_i + x_i"))
    assert "cannot read standard input: it is longer than 10 characters" in stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize(
    ("suffix", "reason"),
    [
        (".txt", "it is longer than 1,000 characters"),
        (".csv", "it is longer than 1,000 characters"),
        (".npy", "it is not a .npy file"),
        (".npz", "it is not a regular file"),
    ],
)
def test_an_array_file_that_never_ends_is_refused(cli, monkeypatch, tmp_path, suffix, reason):
    monkeypatch.setattr(command_line, "MAX_TEXT_CHARS", 1000)
    (tmp_path / f"zero{suffix}").symlink_to("/dev/zero")
    stderr = one_error(cli("eval", "x_i", f"x=zero{suffix}", cwd=tmp_path))
    assert f"array 'x': cannot read 'zero{suffix}': {reason}" in stderr


def test_a_text_array_at_the_limit_is_read(cli, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(command_line, "MAX_TEXT_CHARS", 8)
    (tmp_path / "x.csv").write_text("1,2,3.5\n")  # 8 characters
    np.testing.assert_array_equal(
        numbers(printed(cli("eval", "x_i", "x=x.csv", cwd=tmp_path))), [1, 2, 3.5]
    )


def test_npy_header_claiming_1e11_elements_is_refused_before_reading(cli, tmp_path) -> None:
    write_npy_header(tmp_path / "huge.npy", (10**11,), bytes(64))
    stderr = one_error(cli("eval", "x_i", "x=huge.npy", cwd=tmp_path))
    assert "its shape (100000000000,) has 100,000,000,000 elements" in stderr


def test_npy_header_larger_than_the_file_is_refused_before_allocating(cli, tmp_path) -> None:
    claimed = command_line.MAX_ELEMENTS  # float64 elements: 128 MiB, in a file of 80 bytes
    write_npy_header(tmp_path / "short.npy", (claimed,), bytes(80))
    tracemalloc.start()
    try:
        stderr = one_error(cli("eval", "x_i", "x=short.npy", cwd=tmp_path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"needs {8 * claimed:,} bytes of data, but only 80 follow the header" in stderr
    assert peak < 2**22  # NumPy reports its allocations to tracemalloc: none near 128 MiB


def test_npy_from_a_pipe_that_ends_early_is_refused(cli, tmp_path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6.0))
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(buffer.getvalue()[:-8]))
    writer.start()
    try:
        stderr = one_error(cli("eval", "x_i", "x=x.npy", cwd=tmp_path))
    finally:
        writer.join(timeout=60)
    assert "cannot read 'x.npy': it ends before the 48 bytes of its data" in stderr


def test_npy_in_fortran_order_and_big_endian_reads_its_values(cli, tmp_path) -> None:
    A = np.asfortranarray(np.arange(6.0).reshape(2, 3)).astype(">f8")
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "x.npy", np.array([1.0, -2.0, 0.5]))
    result = cli("eval", "A_ij x_j", "A=A.npy", "x=x.npy", cwd=tmp_path)
    np.testing.assert_allclose(numbers(printed(result)), A @ [1.0, -2.0, 0.5])


def _npz_with_member(path: Path, member: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("A.npy", member)


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _huge_header() -> bytes:
    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


CORRUPT_FILES = {
    "random bytes": ("x.npy", bytes(range(256)) * 4, "it is not a .npy file"),
    "cut short": ("x.npy", _npy_bytes(np.arange(6.0))[:-7], "only 41 follow the header"),
    "strings": ("x.npy", _npy_bytes(np.array(["a", "b"])), "it holds <U1 values, not numbers"),
    "objects": ("x.npy", _npy_bytes(np.array([{}, 1], dtype=object)), "it holds object values"),
    "records": ("x.npy", _npy_bytes(np.zeros(2, "f8,i4")), "not numbers"),
    "negative shape": (
        "x.npy",
        _huge_header().replace(b"1000000, 1000000", b"-1, -1".ljust(16)),
        "its header gives the shape (-1, -1)",
    ),
    "unbalanced header": (
        "x.npy",
        _npy_bytes(np.arange(6.0)).replace(b"'shape': (", b"'shape': b"),
        "it is not a .npy file",
    ),
    "npz of random bytes": ("x.npz", bytes(range(256)), "File is not a zip file"),
    "npz member too large": (
        "x.npz",
        None,
        "its shape (1000000, 1000000) has 1,000,000,000,000 elements",
    ),
    "csv with a word": ("x.csv", b"1,2\n3,four\n", "could not convert string 'four'"),
    "csv with ragged rows": ("x.csv", b"1,2,3\n4,5\n", "cannot read 'x.csv'"),
    "txt not UTF-8": ("x.txt", b"1 2 \xff\n", "it is not UTF-8 text"),
    "txt with NUL": ("x.txt", b"1\x002\n", "cannot read 'x.txt'"),
    "txt with no numbers": ("x.txt", b"# nothing\n", "'x.txt' holds no numbers"),
}


@pytest.mark.parametrize("case", CORRUPT_FILES)
def test_corrupt_array_file_is_a_user_error_that_names_it(cli, tmp_path, case) -> None:
    name, content, reason = CORRUPT_FILES[case]
    if content is None:
        _npz_with_member(tmp_path / name, _huge_header())
    else:
        (tmp_path / name).write_bytes(content)
    stderr = one_error(cli("eval", "x_i", f"x={name}", cwd=tmp_path))
    assert stderr.startswith("indexcalc: error: array 'x': ")
    assert reason in stderr


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("[" * 33 + "1" + "]" * 33, "nests lists more than 32 deep"),
        ("[" * 5000 + "]" * 5000, "nests lists more than 32 deep"),
        ("[1,[2]]", "rows of different lengths"),
        ("[1,,2]", "not a number or a list of numbers"),
        ("\x00", "not a number or a list of numbers"),
    ],
)
def test_malformed_literal_is_a_user_error(cli, value, reason) -> None:
    assert reason in one_error(cli("eval", "x_i", f"x={value}"))


@pytest.mark.parametrize(
    ("dims", "reason"),
    [
        ("i=³", "must be a whole number >= 0"),  # "³".isdigit(), yet int("³") fails
        ("i=٣", "must be a whole number >= 0"),
        ("i=-1", "must be a whole number >= 0"),
        ("i=99999999999999999999", f"at most {command_line.MAX_ELEMENTS:,} values"),
        ("i=" + "9" * 5000, f"at most {command_line.MAX_ELEMENTS:,} values"),  # int() fails
    ],
)
def test_dims_size_that_is_not_a_plain_size_is_a_user_error(cli, dims, reason) -> None:
    stderr = one_error(cli("eval", "delta_ij", "--dims", dims))
    assert "--dims" in stderr
    assert reason in stderr


def test_dims_that_make_a_delta_of_1e12_elements_are_refused_before_allocating(cli) -> None:
    tracemalloc.start()
    try:
        stderr = one_error(cli("eval", "delta_ij", "--dims", "i=1000000"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "an array of 1,000,000,000,000 elements (--dims i=1000000)" in stderr
    assert peak < 2**22


def test_an_outer_product_beyond_the_limit_is_refused(cli) -> None:
    vector = literal(range(300))
    stderr = one_error(cli("eval", "x_i y_j z_k", f"x={vector}", f"y={vector}", f"z={vector}"))
    assert f"an array of {300**3:,} elements" in stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("x_i", "x=[1,2]", "--dims", "i=3"), "--dims i=3 contradicts axis 0 of 'x', of size 2"),
        (
            ("delta_ij x_j", "x=[1,2]", "--dims", "i=3"),
            "--dims i=3 contradicts axis 0 of 'x', of size 2",
        ),
        (
            ("A_ii", "--wrt", "A_pq", "A=[[1,2],[3,4]]", "--dims", "q=3"),
            "--dims q=3 contradicts axis 0 of 'A', of size 2",
        ),
        (("eps_ijk x_k", "x=[1,2,3]", "--dims", "i=4"), "--dims i=4 contradicts an ε of rank 3"),
    ],
)
def test_dims_contradicting_an_array_is_refused_naming_both_sizes(cli, args, said) -> None:
    assert said in one_error(cli("eval", *args))


def test_dims_for_an_array_not_given_leave_the_missing_array_error(cli) -> None:
    assert "missing array x" in one_error(cli("eval", "x_i", "--dims", "i=3"))


def test_dims_agreeing_with_the_arrays_are_accepted(cli) -> None:
    result = cli("eval", "delta_ij x_j", "x=[1,2]", "--dims", "i=2,j=2")
    np.testing.assert_array_equal(numbers(printed(result)), [1, 2])


def test_check_refuses_finite_differences_beyond_its_limit(cli) -> None:
    stderr = one_error(cli("check", "x_i A_ij x_j", "--wrt", "x_k", "--dims", "i=100000"))
    assert "by x_k would difference 100,000 elements" in stderr
    assert "--dims i=100000" in stderr


def test_a_result_too_large_to_print_is_refused_and_saved_with_save(cli, tmp_path) -> None:
    x = np.arange(200.0)
    arrays = (f"x={literal(x)}", f"y={literal(-x)}")
    stderr = one_error(cli("eval", "x_i y_j", *arrays, cwd=tmp_path))
    assert "the result has 40,000 elements, more than the 32,768 indexcalc prints" in stderr
    assert "--save FILE.npy" in stderr
    assert printed(cli("eval", "x_i y_j", *arrays, "--save", "xy.npy", cwd=tmp_path)) == ""
    np.testing.assert_array_equal(np.load(tmp_path / "xy.npy"), np.outer(x, -x))


@pytest.mark.parametrize("path", ["missing/y.npy", "y\x00.npy", "a" * 300 + ".npy"])
def test_save_where_nothing_can_be_written_is_a_user_error(cli, tmp_path, path) -> None:
    assert "cannot write" in one_error(cli("eval", "x_i", "x=[1,2]", "--save", path, cwd=tmp_path))


@pytest.mark.parametrize(
    ("stdin", "said"),
    [
        (None, "cannot read standard input: it is closed"),
        (io.TextIOWrapper(io.BytesIO(b"x_i \xff"), encoding="utf-8"), "it is not UTF-8 text"),
    ],
)
def test_standard_input_that_cannot_be_read_is_a_user_error(capsys, monkeypatch, stdin, said):
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["simplify", "-"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("indexcalc: error: cannot read standard input: ")
    assert stderr.count("\n") == 1
    assert said in stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_standard_output_on_a_full_disk_is_a_user_error(capsys, monkeypatch) -> None:
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        assert main(["simplify", "x_i + x_i"]) == 2
    assert capsys.readouterr().err == (
        "indexcalc: error: cannot write standard output: No space left on device\n"
    )


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("owner", "name", "args"),
    [
        (command_line, "build_parser", ()),
        (command_line, "read_expression", ()),
        (ic, "parse", ()),
        (command_line, "load_arrays", ()),
        (ic, "compile", ()),
        (ic.Compiled, "__call__", ()),
        (command_line, "write", ()),
        (command_line, "check_derivatives", ("--wrt", "x_k")),
    ],
)
def test_ctrl_c_at_any_stage_exits_130_with_one_line(cli, monkeypatch, owner, name, args) -> None:
    monkeypatch.setattr(owner, name, _interrupt)
    command = "check" if args else "eval"
    arrays = () if args else ("A=[[1,2],[3,4]]", "x=[1,1]")
    try:
        result = cli(command, "x_i A_ij x_j", *arrays, *args)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main")
    assert (result.returncode, result.stderr) == (130, "indexcalc: interrupted\n")


def test_random_command_lines_never_exit_3(cli, tmp_path) -> None:
    """A little fuzzing: valid and invalid pieces mixed; every run ends in 0, 1 or 2, and a
    2 is one message."""
    rng = np.random.default_rng(15)
    (tmp_path / "bytes.npy").write_bytes(rng.bytes(300))
    (tmp_path / "bytes.npz").write_bytes(rng.bytes(300))
    (tmp_path / "bytes.csv").write_bytes(rng.bytes(300))
    (tmp_path / "e.ic").write_bytes(rng.bytes(100))
    np.save(tmp_path / "A.npy", rng.normal(size=(2, 2)))
    write_npy_header(tmp_path / "huge.npy", (10**11,))
    expressions = [
        "x_i A_ij x_j",
        "A_ij x_j",
        "delta_ij x_j",
        "eps_ijk x_k",
        "x_i +* y_i",
        "@e.ic",
        "@missing.ic",
        "(x_i x_i)_{,k}",
        "A_ii",
        "log(x_i x_i)",
    ]
    values = [
        "x=[1,2]",
        "x=[1,2,3]",
        "A=A.npy",
        "A=[[1,2],[3,4]]",
        "x=bytes.npy",
        "A=bytes.npz",
        "x=bytes.csv",
        "x=huge.npy",
        f"x={literal([1] * 200)}",
        "x=" + "[" * 40,
        "A=³",
    ]
    options = [
        ["--dims", "i=³"],
        ["--dims", "i=1000000"],
        ["--dims", "i=3"],
        ["--dims", "j=2"],
        ["--wrt", "x_k"],
        ["--wrt", "A_pq"],
        ["--out", "ji"],
        ["--symmetric", "A"],
    ]
    for _ in range(60):
        command = str(rng.choice(["eval", "eval", "check", "diff"]))
        argv = [command, str(rng.choice(expressions))]
        if command == "eval":
            argv += [str(v) for v in rng.choice(values, size=rng.integers(0, 3))]
        for k in rng.choice(len(options), size=rng.integers(0, 3)):
            if command != "diff" or options[k][0] in ("--wrt", "--symmetric"):
                argv += options[k]
        result = cli(*argv, cwd=tmp_path)
        assert result.returncode in (0, 1, 2), (argv, result.stderr)
        assert "Traceback" not in result.stderr
        if result.returncode == 2:
            assert result.stderr.count("error:") == 1, (argv, result.stderr)


# -- end to end: the console script and python -m in a subprocess -------------------------


def program(module: bool = False) -> tuple[list[str], dict[str, str]]:
    """The command line as a program and its environment: this environment's console
    script, or ``python -m indexcalc`` when `module` is set or the script is not installed.

    PYTHONPATH puts the checkout first, so the program runs this code whatever copy of
    indexcalc the environment has installed.
    """
    script = Path(sys.executable).with_name("indexcalc")
    command = (
        [str(script)] if script.is_file() and not module else [sys.executable, "-m", "indexcalc"]
    )
    environment = dict(os.environ, PYTHONIOENCODING="utf-8")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    return command, environment


def run_process(
    *args: str, stdin: str | None = None, module: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the command line as a program (see `program`) to its end."""
    command, environment = program(module)
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        env=environment,
        timeout=120,
    )


def start_process(*args: str, module: bool = False) -> subprocess.Popen[str]:
    """Start the command line as a program (see `program`), its output captured."""
    command, environment = program(module)
    return subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        env=environment,
    )


def test_console_script_prints_a_derivative() -> None:
    result = run_process("diff", "x_i A_ij x_j", "--wrt", "x_k")
    assert printed(result) == "x_i A_ik + A_kj x_j"


def test_console_script_reports_a_user_error_with_exit_2_and_no_traceback() -> None:
    stderr = error_message(run_process("diff", "x_i +* y_i", "--wrt", "x_k"))
    assert "unexpected '*'" in stderr
    assert "\nx_i +* y_i\n     ^\n" in stderr


def test_console_script_reads_the_expression_from_standard_input() -> None:
    result = run_process("eval", "-", "A=[[1,2],[3,4]]", "x=[1,-1]", stdin="A_ij x_j\n")
    np.testing.assert_array_equal(numbers(printed(result)), [-1, -1])


def _opened_for_writing(fifo: Path, process: subprocess.Popen[str]) -> int:
    """`fifo` opened for writing, which succeeds once `process` has opened it to read."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO or process.poll() is not None:
                raise
            if time.monotonic() > deadline:
                process.kill()
                raise
        time.sleep(0.01)


@pytest.mark.parametrize("module", [False, True])
def test_ctrl_c_sent_to_the_program_exits_130_without_a_traceback(tmp_path, module) -> None:
    """SIGINT while the program waits for EXPR from a pipe: it is then past its imports, in
    main, where nothing but `main`'s own handling stands between Ctrl-C and a traceback."""
    fifo = tmp_path / "expr.ic"
    os.mkfifo(fifo)
    process = start_process("simplify", f"@{fifo}", module=module)
    descriptor = _opened_for_writing(fifo, process)
    try:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        os.close(descriptor)
    assert (process.returncode, stdout, stderr) == (130, "", "indexcalc: interrupted\n")


def test_ctrl_c_while_the_package_imports_exits_130_without_a_traceback() -> None:
    """The console script runs `_indexcalc_launcher.main`, which imports the package only
    once its Ctrl-C handler is in place. This runs the same two lines as the script pip
    writes, ignoring SIGINT until the launcher takes it over (a signal before that would
    be the test's own race), and sends SIGINT every 10 ms once the launcher is loaded:
    the imports take far longer, so one lands while they run."""
    _, environment = program()
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from _indexcalc_launcher import main\n"
        "print('ready', flush=True)\n"
        "sys.exit(main())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "diff", "x_i x_i", "--wrt", "x_k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        env=environment,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        process.send_signal(signal.SIGINT)
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=60)
    assert (process.returncode, stdout, stderr) == (130, "", "indexcalc: interrupted\n")


def test_the_console_script_is_the_launcher() -> None:
    project = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.findall(r"^indexcalc = (.+)$", project, re.MULTILINE) == [
        '"_indexcalc_launcher:main"'
    ]


def test_python_dash_m_runs_the_command_line() -> None:
    result = run_process("--version", module=True)
    assert printed(result) == f"indexcalc {ic.__version__}"
