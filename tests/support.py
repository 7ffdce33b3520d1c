"""Helpers the project's tests share: build submissions, grade them, read the results.

Submissions are graded through the real command line in a subprocess (exactly
what Gradescope runs), so a test sees what a student would see.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import jsonschema

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
STUDENT = ROOT / "student"
SCHEMA = json.loads((Path(__file__).parent / "gradescope_results.schema.json").read_text())


@dataclass(frozen=True)
class Edit:
    """Replace ``find`` (which must occur exactly once) by ``replace`` in ``part/file``."""

    part: str
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Mutant:
    """A realistic mistake in one graded function of the reference.

    ``function`` is the tag of the mutated function; ``mistake`` (optional) is a
    phrase that must appear in the output of a failing check tagged with it.
    """

    id: str
    function: str
    edits: tuple[Edit, ...]
    mistake: str | None = None


@dataclass(frozen=True)
class Variant:
    """A correct implementation that differs from the reference; it must get full marks."""

    id: str
    function: str
    edits: tuple[Edit, ...]


def make_submission(dest: Path, edits: Iterable[Edit] = (), base: Path = SOLUTIONS, parts: Iterable[str] = ("part1", "part2")) -> Path:
    """Copy the graded parts of ``base`` to ``dest`` and apply ``edits``."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        shutil.copytree(base / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    for e in edits:
        path = dest / e.part / e.file
        text = path.read_text(encoding="utf-8")
        count = text.count(e.find)
        if count != 1:
            raise AssertionError(f"edit for {e.part}/{e.file}: text to replace occurs {count} times: {e.find!r}")
        path.write_text(text.replace(e.find, e.replace), encoding="utf-8")
    return dest


def grade(submission: Path, results: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None,
          config: Path | None = None) -> dict[str, Any]:
    """Run ``python -m autograder grade`` and return the validated results."""
    cmd = [sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results), "--quiet", *args]
    if config:
        cmd += ["--config", str(config)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"grader exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(results.read_text())
    validate(data)
    return data


def validate(results: dict[str, Any]) -> None:
    """Gradescope's schema, plus what a schema cannot say (score within bounds)."""
    jsonschema.validate(results, SCHEMA)
    for t in results["tests"]:
        assert 0 <= t["score"] <= t["max_score"] + 1e-9, f"{t['number']}: score {t['score']} outside [0, {t['max_score']}]"
    assert abs(results.get("score", 0) - sum(t["score"] for t in results["tests"])) < 1e-6


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["extra_data"]["check_id"]: t for t in results["tests"]}


def lost(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in results["tests"] if t["score"] < t["max_score"] - 1e-9]


def explain(tests: Iterable[dict[str, Any]]) -> str:
    return "\n".join(f"  {t['number']} {t['name']}: {t['output'][:400]}" for t in tests)


def assert_mutant_caught(results: dict[str, Any], mutant: Mutant) -> None:
    """The mutant loses points on a check tagged with its function and nowhere else."""
    failing = lost(results)
    mine = [t for t in failing if mutant.function in t["tags"]]
    assert mine, f"{mutant.id}: no check tagged {mutant.function} lost points"
    collateral = [t for t in failing if mutant.function not in t["tags"]]
    assert not collateral, f"{mutant.id}: checks of untouched functions lost points:\n{explain(collateral)}"
    if mutant.mistake:
        assert any(mutant.mistake.lower() in t["output"].lower() for t in mine), (
            f"{mutant.id}: no failing check named the mistake {mutant.mistake!r}:\n{explain(mine)}")


def assert_full_marks(results: dict[str, Any], what: str) -> None:
    failing = lost(results)
    assert not failing, f"{what}: lost points on\n{explain(failing)}"
    assert results["tests"], f"{what}: no checks were graded"


def assert_handout_zero(results: dict[str, Any], check_ids: Iterable[str],
                        phrases: tuple[str, ...] = ("not implemented yet",)) -> None:
    """Every check in ``check_ids`` scored 0 on the untouched handout with one clear line
    (containing one of ``phrases``) and no grader error."""
    got = by_id(results)
    for cid in check_ids:
        assert cid in got, f"{cid} was not graded"
        t = got[cid]
        assert t["score"] == 0, f"{cid}: the handout scored {t['score']}"
        text = t["output"].strip()
        assert any(p in text for p in phrases), f"{cid}: {text[:300]}"
        assert "\n" not in text, f"{cid}: more than one line:\n{text}"
        assert "internal error" not in text and "not your fault" not in text, f"{cid}: {text}"
