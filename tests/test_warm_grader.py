"""The tests' warm grader (tests/warm_grader.py) is ``python -m autograder`` minus the start-up.

A fork of the server must behave like a fresh interpreter in what the grader can observe: the
command line's output, errors and status, its working folder (which ``autograder`` package is
imported), and a time limit that stops it. Whole grades agree both ways in
``test_engine.py::test_results_are_deterministic``.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.warm_grader import WarmGrader

FAKE_CONFIG = ROOT / "tests" / "fake_assignment" / "grading.toml"


@pytest.fixture(scope="module")
def warm() -> WarmGrader:
    server = WarmGrader()
    yield server
    server.stop()


def _cold(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_output_and_status_match_a_fresh_interpreter(warm: WarmGrader):
    for argv in (["list", "--config", str(FAKE_CONFIG)], ["list", "--editions"], ["grade"]):
        hot, cold = warm.run(argv, ROOT, {"PATH": "/usr/bin:/bin"}, 120), _cold(argv, ROOT)
        assert (hot.returncode, hot.stdout) == (cold.returncode, cold.stdout), argv
        assert hot.stderr.strip().splitlines()[-1:] == cold.stderr.strip().splitlines()[-1:], argv


def test_the_child_imports_autograder_from_its_own_folder(warm: WarmGrader, tmp_path: Path):
    """A grade run in another folder (the student edition in a handout) uses that folder's
    engine, never one the server or an earlier child imported."""
    shutil.copytree(ROOT / "autograder", tmp_path / "autograder", ignore=shutil.ignore_patterns("__pycache__", ".cache"))
    cli = tmp_path / "autograder" / "cli.py"
    cli.write_text(cli.read_text(encoding="utf-8").replace(
        'print(f"{name:<10} {config_mod.load(args.config, edition=name).title}")',
        'print(f"{name:<10} COPY")'), encoding="utf-8")
    argv = ["list", "--editions", "--config", str(ROOT / "grading.toml")]
    assert "COPY" not in warm.run(argv, ROOT, {}, 120).stdout
    assert "COPY" in warm.run(argv, tmp_path, {}, 120).stdout
    assert "COPY" not in warm.run(argv, ROOT, {}, 120).stdout


def test_errors_and_the_time_limit(warm: WarmGrader, tmp_path: Path):
    bad = tmp_path / "grading.toml"
    bad.write_text("[assignment\n")
    out = warm.run(["list", "--config", str(bad)], ROOT, {}, 120)
    assert out.returncode == 2 and "configuration error" in out.stderr
    # An empty submission: the grader is still setting up (no worker yet) when the limit kills it.
    (tmp_path / "empty").mkdir()
    with pytest.raises(subprocess.TimeoutExpired):
        warm.run(["grade", str(tmp_path / "empty"), "--results", str(tmp_path / "r.json")], ROOT, {}, 0.3)
    assert warm.run(["list", "--config", str(FAKE_CONFIG)], ROOT, {}, 120).returncode == 0  # still serving
