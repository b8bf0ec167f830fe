"""The command line: ChannelAttribution's input in, channel totals out as CSV."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from closedloop.attribution.cli import CLI_MODELS, main

# A > B converts once (worth 30), A and B alone never: Markov gives A 1/3 and B 2/3 (see test_markov).
PATHS = """path,total_conversions,total_conversion_value,total_null
A > B,1,30,0
A,0,0,1
B,0,0,1
"""


@pytest.fixture
def paths_file(tmp_path: Path) -> Path:
    path = tmp_path / "paths.csv"
    path.write_text(PATHS)
    return path


def run(*argv: str) -> tuple[int, list[dict[str, str]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, list(csv.DictReader(io.StringIO(out.getvalue()))), err.getvalue()


def test_markov_prints_channel_attribution_columns(paths_file: Path) -> None:
    code, rows, err = run(str(paths_file), "--model", "markov")
    assert (code, err) == (0, "")
    assert rows == [
        {"channel_name": "A", "total_conversions": "0.333333", "total_conversion_value": "10.0"},
        {"channel_name": "B", "total_conversions": "0.666667", "total_conversion_value": "20.0"},
    ]


def test_all_models_add_a_model_column(paths_file: Path) -> None:
    code, rows, _ = run(str(paths_file), "--model", "all")
    assert code == 0
    assert [row["model"] for row in rows[::2]] == [model.value for model in CLI_MODELS]
    by_model = {(row["model"], row["channel_name"]): float(row["total_conversions"]) for row in rows}
    assert by_model[("first_touch", "A")] == 1.0
    assert by_model[("last_touch", "B")] == 1.0
    assert by_model[("linear", "A")] == 0.5


def test_a_list_of_models(paths_file: Path) -> None:
    _, rows, _ = run(str(paths_file), "--model", "linear, last_touch")
    assert {row["model"] for row in rows} == {"linear", "last_touch"}


def test_excluded_channel_gets_nothing(paths_file: Path) -> None:
    _, rows, _ = run(str(paths_file), "--model", "linear", "--exclude", "A")
    assert [(row["channel_name"], row["total_conversions"]) for row in rows] == [("A", "0.0"), ("B", "1.0")]


FAILURES: dict[str, tuple[list[str], str]] = {
    "models that need touch times": (["--model", "time_decay"], "needs touch times"),
    "models that need milestones": (["--model", "w_shaped"], "needs lead and opportunity touches"),
    "unknown model": (["--model", "magic"], "unknown model 'magic'"),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_bad_arguments_exit_2_with_a_message(paths_file: Path, case: tuple[list[str], str]) -> None:
    arguments, message = case
    code, rows, err = run(str(paths_file), *arguments)
    assert code == 2
    assert rows == []
    assert err.startswith("error: ")
    assert message in err


def test_bad_file_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("path,total_conversions,total_null\nA,1,0\nB,2,-1\n")
    code, _, err = run(str(path))
    assert code == 2
    assert err == f"error: {path}:3: total_null is negative: -1\n"


def test_missing_file(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "nowhere.csv"))
    assert code == 2
    assert "nowhere.csv" in err


def test_runs_as_a_module(paths_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "closedloop.attribution", str(paths_file), "--model", "markov"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[3],
        env={"PYTHONPATH": str(Path(__file__).parents[3] / "layers" / "common" / "python")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "channel_name,total_conversions,total_conversion_value",
        "A,0.333333,10.0",
        "B,0.666667,20.0",
    ]
