"""Gradescope results: built from outcomes, written atomically, valid in every case.

The results file is rewritten after every check, so a run killed half-way
(memory, platform time limit) still leaves valid JSON with what was graded.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .config import CheckSpec, Config, sort_key
from .plugin import Outcome

OUTPUT_LIMIT = 90_000  # Gradescope cuts each output at 100,000 characters
STUDENT_OUTPUT_LIMIT = 4_000

STATUS_TEXT = {
    "passed": "passed",
    "failed": "failed",
    "student_error": "error in your code",
    "timeout": "timed out",
    "not_run": "not run",
    "skipped": "not graded",
    "grader_error": "grader error",
    "pending": "not run",
}


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit:,} characters cut] ...\n{text[-half:]}"


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def rerun_command(spec: CheckSpec) -> str:
    """The command that grades this check alone, with the same inputs (they are derandomised)."""
    return f"python -m autograder grade . --only {spec.number}"


def test_entry(outcome: Outcome, file_notes: list[str]) -> dict[str, Any]:
    """One entry of ``tests`` for a finished check, in Gradescope's markdown: the verdict line
    first, then the named mistake and notes as their own paragraphs, what the student's code
    printed in a code block, and (visible checks) the command that reruns it alone."""
    spec = outcome.spec
    head, *rest = f"{STATUS_TEXT.get(outcome.status, outcome.status).upper()}: {outcome.message}".rstrip().split("\n")
    paragraphs = [head, *[r for r in rest if r.strip()]]
    if outcome.status != "passed":
        paragraphs += file_notes
    if outcome.student_output and outcome.status != "passed":
        printed = _cut(outcome.student_output, STUDENT_OUTPUT_LIMIT).replace("```", "` ` `")
        paragraphs.append("Your code printed:\n```text\n" + printed + "\n```")
    if outcome.status != "passed" and spec.visibility == "visible":
        paragraphs.append(f"Rerun this check alone (same inputs): `{rerun_command(spec)}`")
    entry: dict[str, Any] = {
        "name": spec.name,
        "number": spec.number,
        "score": _finite(outcome.score),
        "max_score": spec.weight,
        "status": "passed" if outcome.status == "passed" else "failed",
        "output": _cut("\n\n".join(paragraphs), OUTPUT_LIMIT),
        "output_format": "md",
        "visibility": spec.visibility,
        "tags": list(outcome.tags),
        "extra_data": {"outcome": outcome.status, "duration_s": outcome.duration_s, "check_id": spec.id,
                       "grades": outcome.grades, "rerun": rerun_command(spec)},
    }
    if outcome.detail:
        entry["extra_data"]["grader_traceback"] = outcome.detail
    return entry


def pending_entry(spec: CheckSpec, reason: str) -> dict[str, Any]:
    """An entry for a configured check that produced no outcome."""
    return {
        "name": spec.name,
        "number": spec.number,
        "score": 0.0,
        "max_score": spec.weight,
        "status": "failed",
        "output": f"NOT RUN: {reason}",
        "visibility": spec.visibility,
        "tags": [],
        "extra_data": {"outcome": "not_run", "check_id": spec.id},
    }


def build_results(
    cfg: Config,
    outcomes: dict[str, Outcome],
    expected: Iterable[str],
    summary: str,
    execution_time: float,
    notes_for: Any,
    missing_reason: str,
    leaderboard: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole results document; ``expected`` lists the check ids this run owes a result for."""
    tests = []
    for cid in expected:
        spec = cfg.checks[cid]
        if cid in outcomes:
            tests.append(test_entry(outcomes[cid], notes_for(outcomes[cid].tags)))
        else:
            tests.append(pending_entry(spec, missing_reason))
    tests.sort(key=lambda t: sort_key(t["number"]))
    results: dict[str, Any] = {
        "score": round(sum(t["score"] for t in tests), 4),
        "execution_time": round(execution_time, 2),
        "output": _cut(summary, OUTPUT_LIMIT),
        "output_format": "text",
        "test_output_format": "text",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": extra or {},
    }
    if leaderboard:
        results["leaderboard"] = leaderboard
    return results


def crash_results(message: str, detail: str, execution_time: float = 0.0) -> dict[str, Any]:
    """Results for a run in which the grader itself failed: score 0, a message for the student."""
    return {
        "score": 0.0,
        "execution_time": round(execution_time, 2),
        "output": message,
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": [],
        "extra_data": {"grader_error": _cut(detail, OUTPUT_LIMIT)},
    }


def write_atomic(path: Path, results: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and a rename, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, allow_nan=False, ensure_ascii=False)
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # As root (Gradescope) the sandbox user must not read it; elsewhere the user may.
        os.chmod(tmp, 0o600 if os.geteuid() == 0 else 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
