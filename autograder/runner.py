"""One grading run, end to end: find the files, stage them, run the checks, report.

Order of work (each step small and in its own module):
``discovery`` finds the graded files -> ``sandbox.make_staging`` builds the tree the
workers import (handout overlaid with the submission's graded files) -> pytest
runs the checks with :class:`~autograder.plugin.GradingPlugin` -> ``report``
writes the results after every check and once more at the end.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import report
from .config import Config
from .console import Console
from .discovery import Discovery, discover
from .plugin import GradingPlugin, Outcome, RunState
from .registry import ALL
from .sandbox.worker_main import release_free_memory  # the workers' own (no import-time effects)
from .session import Clock, PartSession
from .standins import StandIns
from .checks import reference
from .untouched import untouched_functions

_CONTEXT: "GradingContext | None" = None


@dataclass
class GradingContext:
    """What the check fixtures (``autograder/checks/conftest.py``) reach during a run."""

    cfg: Config
    discovery: Discovery
    sessions: dict[str, PartSession]
    clock: Clock
    plugin: GradingPlugin
    state: RunState


def current_context() -> GradingContext:
    """The running grade's context; checks get it through fixtures, never directly."""
    if _CONTEXT is None:
        raise RuntimeError("no grading run is active (checks run only through `python -m autograder grade`)")
    return _CONTEXT


def _overlay(cfg: Config, found: Discovery, dest: Path) -> dict[str, Path]:
    """Copy each part's handout, then the submission's usable graded files over it."""
    parts = {}
    for name in cfg.parts:
        target = dest / name
        shutil.copytree(cfg.handout_dir / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for fname, src in found.usable(name).items():
            shutil.copyfile(src, target / fname)
        parts[name] = target
    return parts


def _file_notes(found: Discovery, tags: tuple[str, ...]) -> list[str]:
    """Notes about graded files that a check's functions live in and that were not taken."""
    notes = []
    for key, f in sorted(found.files.items()):
        module = f"{f.part}.{Path(f.name).stem}"
        trainer = f.part == "part1" and f.name.startswith("train_")
        if any(t.startswith(module + ".") or (trainer and t.startswith(f"{f.part}.train.")) for t in tags):
            if f.status != "found":
                notes.append(f"Note: {f.message}")
    return notes


def _protect(protect_paths: Any, cfg: Config, submission: Path, results_path: Path) -> None:
    """Root mode: hide the reference, checks, config, results and metadata from the sandbox user."""
    # The repository's history holds the reference too (`git show HEAD:solutions/...` from a
    # worker read it before this was protected; tests/test_attacks.py::read_secrets).
    vcs = [cfg.path.parent / name for name in (".git", ".hg", ".svn")]
    protect_paths([*cfg.protected, cfg.reference_dir, cfg.checks_dir, cfg.path, *vcs])
    metadata = submission.resolve().parent / "submission_metadata.json"  # Gradescope's
    protect_paths([metadata] if metadata.exists() else [])
    # The results file is written 0600 as root; its folder is hidden too when it is a
    # dedicated one (Gradescope's /autograder/results), never a shared one like /tmp.
    results_dir = results_path.resolve().parent
    protect_paths([results_path] + ([results_dir] if results_dir.name == "results" else []))


def set_torch_threads(n: int) -> None:
    """Limit the grading process's torch threads (its reference computations are small); 0 leaves torch's default."""
    if n > 0:
        import torch

        torch.set_num_threads(n)


def _recording(cfg: Config, record: Path | None) -> "reference.Recording | None":
    """Turn on recording (``record``) or replay (the student edition's ``[assignment] recorded``)."""
    graded = {part: {Path(f).stem for f in spec.graded_files} | set(spec.aliases) for part, spec in cfg.parts.items()}
    if cfg.recorded is not None:
        recording = reference.Recording.open(cfg.recorded)
        reference.use_recording(recording, replay=True, graded=graded)
        return recording
    if record is not None:
        recording = reference.Recording()
        reference.use_recording(recording, replay=False, graded=graded)
        return recording
    return None


def _write_html(cfg: Config, results_path: Path, results: dict[str, Any], state: Any) -> str:
    """``report.html`` beside the results (``[grader] html_report``, default on); a failure here
    costs the report only, never the results. Returns a line for the console."""
    if not cfg.grader.get("html_report", True):
        return ""
    path = results_path.with_name("report.html")
    try:
        from . import report_html

        report_html.write(path, results, state.figures.entries if state is not None else [], cfg.questions, cfg.title)
        return f"Report with pictures of your models: {path}"
    except Exception as exc:  # noqa: BLE001 - the report is a courtesy
        return f"(report.html not written: {type(exc).__name__}: {exc})"


def _prestart(worker: Any) -> None:
    """Start a worker in the background; a failure here is reported by the first call instead."""
    try:
        worker.start()
    except Exception:
        pass


def grade(
    submission: Path,
    results_path: Path,
    cfg: Config,
    only: list[str] | None = None,
    console: Console | None = None,
    record: Path | None = None,
    figures_out: Path | None = None,
) -> dict[str, Any]:
    """Grade ``submission`` and write Gradescope results to ``results_path``; returns the results.

    ``record``: save the reference values the checks took (the student edition's expectations);
    a config with ``[assignment] recorded`` replays such a file instead of using a reference.
    ``figures_out``: save the pictures the checks attached (``prepare`` keeps the reference's)."""
    global _CONTEXT
    from .sandbox import (Limits, SandboxPolicy, Worker, forkserver, kill_all_descendants, make_staging,
                          protect_paths, restore_protected_paths)

    console = console or Console()
    started = time.monotonic()
    only = list(only or [])
    report.write_atomic(results_path, report.crash_results(
        "The autograder started but did not finish (it was stopped from outside, e.g. out of memory "
        "or out of time). Please resubmit; if it happens again, contact the course staff.", "grading started"))

    policy = SandboxPolicy.detect(cfg.worker)
    if not cfg.worker.get("fork_workers", True):
        forkserver.stop()
    if policy.is_root:
        _protect(protect_paths, cfg, submission, results_path)
    found = discover(submission, cfg)
    console.line(f"Grading {submission} ({cfg.title}, profile {cfg.profile})")
    for line in found.summary_lines() + (policy.describe() + forkserver.describe()):
        console.line(f"  {line}")

    workdir = Path(tempfile.mkdtemp(prefix="ag-run-", dir=cfg.worker.get("staging_parent") or None))
    os.chmod(workdir, 0o755)
    clock = Clock()
    w = cfg.worker
    limits = Limits(
        call_timeout_s=float(w.get("call_timeout_s", 60)),
        memory_mb=int(w.get("memory_mb", 1500)),
        threads=int(w.get("threads", 0)) or min(4, os.cpu_count() or 1),
        output_bytes=int(w.get("output_bytes", 20_000)),
        max_processes=int(w.get("max_processes", 64)),
        startup_timeout_s=float(w.get("startup_timeout_s", 60)),
    )
    # Trusted libraries a worker imports before the student's folder is on its path.
    preload = tuple(w.get("preload", ("numpy", "torch")))
    budget = float(cfg.grader.get("run_budget_s", 420))
    state_holder: dict[str, RunState] = {}
    report_line = ""  # where report.html went (said after the table)
    session_holder: dict[str, dict[str, PartSession]] = {}

    def expected() -> list[str]:
        return state_holder["state"].expected() if "state" in state_holder else []

    def summary(done: bool) -> str:
        lines = [f"{cfg.title}: graded {len(expected())} checks" + (f" matching {only}" if only else "") + "."]
        if cfg.recorded is not None:
            hidden = float(cfg.grader.get("hidden_points", 0) or 0)
            lines.append("This is the student edition of the grader: the visible checks, with Gradescope's scores"
                         + (f"; {hidden:g} more points are graded there by hidden checks." if hidden else
                            "; every check of the assignment is visible."))
        if not done:
            lines.append("Grading is still running or was stopped early; the checks below without a result were not run.")
        lines += ["", "Files:"] + [f"  {l}" for l in found.summary_lines()]
        missing = {k: v for s in session_holder.get("sessions", {}).values() for k, v in s.missing_packages.items()}
        if missing:
            lines += ["", "Packages your files import that are not installed where they are graded (each import was "
                          "replaced by a placeholder; only code that uses it fails):"]
            lines += [f"  {name} (imported by {where})" for name, where in sorted(missing.items())]
        st = state_holder.get("state")
        if st and st.collection_errors:
            lines.append("Some checks could not be loaded (a grader problem, not yours); they score 0 and the staff can see why.")
        return "\n".join(lines)

    def write(done: bool) -> dict[str, Any]:
        st = state_holder["state"]
        res = report.build_results(
            cfg, st.outcomes, expected(), summary(done), time.monotonic() - started,
            lambda tags: _file_notes(found, tags),
            "this check did not run (grading stopped early or the check could not be loaded)",
            st.leaderboard.entries,
            {"sandbox": (policy.describe() + forkserver.describe()), "collection_errors": st.collection_errors,
             "unknown_checks": st.unknown_checks, "profile": cfg.profile, "only": only,
             # how often each part's worker started (1 unless student code crashed, hung or
             # blew its memory, which restarts it: ~1 s of torch import each time)
             "worker_starts": {part: s.worker.starts for part, s in session_holder.get("sessions", {}).items()
                               if s.worker.starts}},
        )
        report.write_atomic(results_path, res)
        return res

    try:
        standins = {part: StandIns(part, cfg.checks_dir / part / f"{spec.standins}.py" if spec.standins else None,
                                   spec.depends) for part, spec in cfg.parts.items()}
        # Stand-in modules are not staged: the grader sends a check just the stand-ins it needs.
        stand_in_files = {s.file for s in standins.values() if s.file is not None}
        staged = make_staging(_overlay(cfg, found, workdir / "overlay"), workdir / "stage",
                              drivers=sorted(p for p in cfg.checks_dir.rglob("drivers_*.py") if p not in stand_in_files))
        sessions = {
            part: PartSession(part, Worker(staged / part, staged, limits, policy, preload=preload), found, clock,
                              limits.call_timeout_s,
                              standins=standins[part], part_dir=str(staged / part),
                              setup=((spec.setup, cfg.conventions.get(part, {})) if spec.setup else None))
            for part, spec in cfg.parts.items()
        }
        session_holder["sessions"] = sessions

        def tier(graded: str) -> int:
            if graded == ALL:  # a policy over every function runs after them all: one that hung
                return 1 << 20  # in its own check is then known, and not waited for again here
            part = graded.split(".")[0]
            return standins[part].tier(standins[part].key(graded)) if part in standins else 0

        def on_start(spec: Any, graded: str) -> None:
            for s in sessions.values():
                s.begin_check(spec.number, graded)

        def check_notes() -> list[str]:
            return [note for s in sessions.values() for note in s.check_notes()] + own_dependency_notes()

        def own_dependency_notes() -> list[str]:
            """Student edition: no stand-ins ship (they are solutions), so a check runs with the
            student's own versions of the functions its function calls; say so when one of them
            lost points in its own checks (the course's grader would not charge that here)."""
            if cfg.recorded is None:
                return []
            graded = next((s.graded for s in sessions.values() if s.graded), "")
            part = graded.split(".", 1)[0]
            if part not in standins:
                return []
            st = state_holder["state"]
            failing = {o.grades for o in st.outcomes.values() if o.fraction < 1}
            calls = [f"{part}.{k}" for k in standins[part].calls(standins[part].key(graded))
                     if k not in standins[part].available()]  # those the edition ships still stand in
            broken = [c.split(".", 1)[1] for c in calls if c in failing]
            if not broken:
                return []
            return [f"Note: graded here with your own {', '.join(broken)}, which lost points in its own checks; "
                    "the course's grader uses a correct version there, so a mistake in it costs only its own checks."]

        def student_output() -> str:
            return "\n".join(s.output() for s in sessions.values() if s.used)

        def on_outcome(outcome: Outcome) -> None:
            st = state_holder["state"]
            console.progress(len(st.outcomes), len(st.selected), outcome.spec.number, outcome.spec.name,
                             outcome.status, outcome.duration_s, outcome.score, outcome.spec.weight)
            for s in sessions.values():
                s.new_check()
            # A part whose checks are all done gives its worker's memory back (the container
            # has 768 MB); a later call would simply start a fresh worker.
            pending = {part for cid in st.selected if cid not in st.outcomes for part in st.parts_of(cid)}
            for part, s in sessions.items():
                if st.selected and part not in pending and s.worker.alive:
                    s.worker.close()
            write(done=False)
            release_free_memory()  # the check's tensors are gone; give their pages back

        state = RunState(cfg, only, started + budget, clock, on_outcome, student_output,
                         on_start=on_start, check_notes=check_notes, untouched=untouched_functions(found, cfg),
                         tier=tier)
        state_holder["state"] = state
        # Start the first part's worker while pytest collects the checks: its start-up
        # (importing torch) overlaps the grader's. Only one: each worker holds ~300 MB.
        owed = state.expected()
        graded_parts = sorted({cid.split(".")[0] for cid in owed} & set(sessions)) or \
            (sorted(sessions) if owed else [])  # check ids that do not name their part
        if graded_parts:
            threading.Thread(target=_prestart, args=(sessions[graded_parts[0]].worker,), daemon=True).start()
        plugin = GradingPlugin(state)
        _CONTEXT = GradingContext(cfg, found, sessions, clock, plugin, state)
        args = [
            str(cfg.checks_dir), "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:warnings",
            "-p", "no:unraisableexception", "-p", "no:threadexception",  # their gc passes cost ~0.3 s
            "--import-mode=importlib", f"--rootdir={cfg.checks_dir}", "-o", "python_files=test_*.py",
            "--assert=plain",  # checks fail through fail(), not bare asserts: skip rewriting (~1 s)
            "-c", os.devnull,
        ]
        set_torch_threads(int(cfg.grader.get("threads", 1)))
        recording = _recording(cfg, record)
        pytest.main(args, plugins=[plugin])
        if record is not None and recording is not None:
            recording.save(record)
        if figures_out is not None:
            import torch

            torch.save(state.figures.entries, figures_out)
        results = write(done=True)
    except Exception as exc:  # the grader itself failed: still a valid results file
        detail = traceback.format_exc()
        console.line(f"grader error: {exc}")
        results = report.crash_results(
            "The autograder hit an internal error and could not grade this submission (not your fault). "
            "Please contact the course staff.", detail, time.monotonic() - started)
        report.write_atomic(results_path, results)
    finally:
        _CONTEXT = None
        reference.use_recording(None)
        for s in locals().get("sessions", {}).values():
            try:
                s.worker.close()
            except Exception:
                pass
        kill_all_descendants()
        # Write the final results once more now that no student process is left: in user mode
        # (a laptop) a detached student daemon can rewrite the file between the write above and
        # the kill (tests/test_attacks.py::detached_rewriter); the grader's write must be the last.
        if "results" in locals():
            report.write_atomic(results_path, results)
            report_line = _write_html(cfg, results_path, results, state_holder.get("state"))
        restore_protected_paths()  # local root runs leave the checkout as it was
        shutil.rmtree(workdir, ignore_errors=True)
    console.table(results, cfg.questions)
    console.line(f"\nResults written to {results_path} ({time.monotonic() - started:.1f} s)")
    if report_line:
        console.line(report_line)
    return results

