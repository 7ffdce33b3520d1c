"""The attack suite: hostile submissions must gain nothing and take nothing down (issue 6).

Every attack in ``tests/attacks.py`` is graded for real (``python -m autograder grade``
in a subprocess, ``--only`` the checks of the attacked function) and must show:

* its score is at most the *baseline*'s: the same submission with the attacked function
  simply unimplemented, graded on the same checks;
* the results file is valid Gradescope JSON written by the grader: every selected check
  is there with the grader's own fields, the attacked checks say what happened, and no
  forged content made it in;
* the run ended within a stated bound (start-up allowance + the checks' budgets);
* no process the attack made is alive a few seconds after the run (pid log with start
  times, a token in the argv of exec'd programs, and, as root, no orphaned process of the
  sandbox user);
* attack-specific facts (nothing read or written, no connection, a stable results file...).

Two legs. **root** (CI and Gradescope run as root): every attack, against this checkout.
**user** (a laptop): the grader runs as a normal user (``setpriv``; ``nobody``, or the test process's
own ``agstudent-gwN``, see tests/conftest.py) from a world-readable copy
of the grader, with HOME/TMPDIR/results in a folder that user owns; there is no user
switch, so the worker runs as the same user as the grader. The user leg grades one attack
per defence that still applies there (``Attack.user_leg``): forged results + os._exit at
import and in a call (the grader's final write wins), monkeypatched comparisons (scores
computed in the grader), a hang ignoring signals (outside deadline + SIGKILL), a memory
bomb (RSS poll), a process bomb and detached daemons (subreaper + token/ancestry kill), an
output flood (draining and cut), a socket (user + network namespace) and deleting files.
Reading or changing the grader's files is left out there with the reason in the catalogue:
a worker running as the student can read and write what the student can (out of scope;
copying the reference is a root-only test, see ``copy_reference``).

CI time: one grade per attack (~10-30 s each); baselines are graded once per target and leg.
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.attacks import ATTACKS, BASELINE_BODY, TARGETS, USER_LEG, Attack, Target, replace_body
from tests.support import ROOT, SOLUTIONS, validate
from tests.warm_grader import run_grader

IS_ROOT = os.geteuid() == 0


def sandbox_user() -> str:
    """The user the workers run as (this test process's own under xdist: tests/conftest.py)."""
    return os.environ.get("AG_SANDBOX_USER", "agsandbox")


def user_leg_user() -> str:
    """The normal user the user leg grades as (this test process's own under xdist)."""
    return os.environ.get("AG_TESTS_STUDENT_USER", "nobody")

STARTUP_ALLOWANCE_S = 45.0   # grader + worker start-up on a loaded 2-core machine, on top of the checks' budgets
CONFIG = tomllib.loads((ROOT / "grading.toml").read_text())
KEY_FILES = ["grading.toml", "solutions/part2/adversarial_attack.py", "solutions/part1/utils.py",
             "autograder/checks/part2/test_fgsm.py", "autograder/report.py", "autograder/runner.py",
             "student/part2/adversarial_attack.py", "student/part1/utils.py"]


def budget_of(number: str) -> float:
    for table in CONFIG["checks"].values():
        if table["number"] == number:
            return float(table.get("budget_s", CONFIG["grader"]["default_check_budget_s"]))
    raise KeyError(number)


def bound_for(selection: tuple[str, ...]) -> float:
    """The stated wall-time bound of one grade: start-up allowance + each selected check's budget."""
    return STARTUP_ALLOWANCE_S + sum(budget_of(n) for n in selection)


def sha_files(base: Path, rels: list[str]) -> dict[str, str]:
    return {r: hashlib.sha256((base / r).read_bytes()).hexdigest() for r in rels if (base / r).is_file()}


def sha_tree(base: Path) -> dict[str, str]:
    return {p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


# ----------------------------------------------------------------------------- legs


@dataclass
class Leg:
    """How a grade is run: as root from this checkout, or as a normal user from a copy."""

    name: str
    repo: Path                 # the checkout the grader runs from
    user: str | None = None    # run as this user (setpriv) when the tests run as root

    def prepare(self, path: Path, mode: int = 0o755) -> Path:
        """A folder the grading user owns (user leg) or root owns (root leg)."""
        path.mkdir(parents=True, exist_ok=True)
        if self.user and IS_ROOT:
            pw = pwd.getpwnam(self.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)
        return path

    def grade(self, submission: Path, results: Path, selection: tuple[str, ...], home: Path) -> tuple[dict[str, Any], float]:
        args = ["grade", str(submission), "--results", str(results), "--quiet",
                "--profile", "quick"] + [a for n in selection for a in ("--only", n)]
        started = time.monotonic()
        if self.name == "root":
            # The attack's probe folder stays visible in the workers' private filesystem view.
            env = dict(os.environ, AG_SANDBOX_SHARE=str(submission.parent / "probe"))
            proc = run_grader(args, cwd=self.repo, env=env, timeout=600)
        else:  # a real interpreter: the grading user differs from this process's
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1"}
            cmd = [sys.executable, "-m", "autograder", *args]
            if self.user and IS_ROOT:
                cmd = ["setpriv", f"--reuid={self.user}", f"--regid={pwd.getpwnam(self.user).pw_gid}",
                       "--clear-groups", "--", *cmd]
            proc = subprocess.run(cmd, cwd=self.repo, capture_output=True, text=True, env=env, timeout=600)
        wall = time.monotonic() - started
        assert proc.returncode == 0, f"grader exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        data = json.loads(results.read_text())
        validate(data)
        return data, wall


def _copy_grader(dest: Path) -> Path:
    """A world-readable copy of what the grader needs (a shared install on a laptop)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("autograder", "solutions", "student"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore, copy_function=shutil.copyfile)
    shutil.copyfile(ROOT / "grading.toml", dest / "grading.toml")
    for path in [dest, *dest.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return dest


@pytest.fixture(scope="module")
def root_leg() -> Leg:
    if not IS_ROOT:
        pytest.skip("root leg: needs root (the sandbox user and network namespaces); run the suite as root, as CI does")
    return Leg("root", ROOT)


@pytest.fixture(scope="module")
def user_leg():
    if IS_ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("user leg: setpriv (util-linux) is missing, so the grader cannot be run as a normal user")
        try:
            pwd.getpwnam(user_leg_user())
        except KeyError:
            pytest.skip(f"user leg: no user {user_leg_user()!r} to run the grader as")
        base = Path(tempfile.mkdtemp(prefix="ag-attack-userrepo-"))
        os.chmod(base, 0o755)
        try:
            yield Leg("user", _copy_grader(base / "repo"), user_leg_user())
        finally:
            shutil.rmtree(base, ignore_errors=True)
    else:  # already a normal user: grade as ourselves, from this checkout
        yield Leg("user", ROOT)


# ----------------------------------------------------------------------------- submissions and probes


@dataclass
class Workspace:
    base: Path
    probe: Path
    submission: Path
    home: Path
    results: Path
    token: str
    port: int

    def log(self) -> list[dict[str, Any]]:
        path = self.probe / "log.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.log() if r["kind"] == kind]


def make_workspace(leg: Leg, port: int = 9) -> Workspace:
    base = Path(tempfile.mkdtemp(prefix="ag-attack-"))
    os.chmod(base, 0o755)
    probe = base / "probe"
    probe.mkdir()
    os.chmod(probe, 0o777)  # the attack's channel to the test: any user may write here
    home = leg.prepare(base / "home", 0o700 if leg.name == "user" else 0o755)
    results_dir = leg.prepare(home / "results")  # named like Gradescope's /autograder/results
    return Workspace(base, probe, base / "submission", home, results_dir / "results.json", uuid.uuid4().hex, port)


def build_submission(ws: Workspace, leg: Leg, target: Target, attack: Attack | None) -> Path:
    """A copy of solutions/ (both parts) with the target function attacked (or unimplemented)."""
    shutil.copytree(SOLUTIONS, ws.submission, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    copy_function=shutil.copyfile)
    path = ws.submission / target.part / target.file
    base = path.read_text(encoding="utf-8")
    if attack is None:
        text = replace_body(base, target.function, BASELINE_BODY)
    else:
        text = attack.source(base, {"PROBE": str(ws.probe), "TOKEN": ws.token, "ROOT": str(leg.repo),
                                    "REAL_ROOT": str(ROOT), "RESULTS": str(ws.results),
                                    "SUBMISSION": str(ws.submission), "PORT": str(ws.port)})
    path.write_text(text, encoding="utf-8")
    for p in [ws.submission, *ws.submission.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)  # readable by the grading user, writable by nobody else
    return ws.submission


# ----------------------------------------------------------------------------- survivors


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return None if fields[0] in (b"Z", b"X") else fields[19].decode()


def survivors(ws: Workspace, leg: Leg) -> list[str]:
    """Processes of the attack still alive: from its pid log, its token, and (root) orphans of the sandbox user."""
    found = []
    pids = ws.probe / "pids.txt"
    for line in (pids.read_text().splitlines() if pids.exists() else []):
        pid, start = line.split()
        if _start_time(int(pid)) == start:
            found.append(f"pid {pid} (logged by the attack)")
    sandbox_uid = pwd.getpwnam(sandbox_user()).pw_uid if leg.name == "root" else None
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            uid = os.stat(f"/proc/{entry}").st_uid
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        if rest[0] in (b"Z", b"X"):
            continue
        if ws.token.encode() in cmdline:
            found.append(f"pid {entry} (argv carries the attack's token)")
        elif sandbox_uid is not None and uid == sandbox_uid and int(rest[1]) in (0, 1):
            found.append(f"pid {entry} (an orphaned process of {sandbox_user()})")
    return sorted(set(found))


def kill_survivors(ws: Workspace) -> None:
    """Clean-up after a failed assertion: kill exactly the processes the attack logged or tagged."""
    pids = ws.probe / "pids.txt"
    for line in (pids.read_text().splitlines() if pids.exists() else []):
        pid, start = line.split()
        if _start_time(int(pid)) == start:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if ws.token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


# ----------------------------------------------------------------------------- baselines


_baselines: dict[tuple[str, str], dict[str, float]] = {}


def baseline_scores(leg: Leg, target: Target) -> dict[str, float]:
    """Per-check scores of the target's submission with the function unimplemented (graded once per leg)."""
    key = (leg.name, target.name)
    if key not in _baselines:
        ws = make_workspace(leg)
        try:
            build_submission(ws, leg, target, None)
            results, _ = leg.grade(ws.submission, ws.results, target.only, ws.home)
            _baselines[key] = {t["number"]: t["score"] for t in results["tests"]}
            assert set(_baselines[key]) == set(target.only)
        finally:
            shutil.rmtree(ws.base, ignore_errors=True)
    return _baselines[key]


# ----------------------------------------------------------------------------- the per-attack assertions


class Listener:
    """TCP and UDP on 127.0.0.1 (the socket attack's destination); records whatever arrives."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.tcp.setblocking(False)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.setblocking(False)

    def arrivals(self) -> list[str]:
        got = []
        try:
            conn, addr = self.tcp.accept()
            got.append(f"TCP connection from {addr}")
            conn.close()
        except BlockingIOError:
            pass
        try:
            data, addr = self.udp.recvfrom(1000)
            got.append(f"UDP datagram {data[:40]!r} from {addr}")
        except BlockingIOError:
            pass
        return got

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


def root_found_nothing(ws: "Workspace", attack: Attack, leg: Leg, kind: str, what: str) -> None:
    """The attack reported its ``kind`` records; as root, none of them lists anything ``found``."""
    recs = ws.records(kind)
    assert recs, f"{attack.id}: the attack did not report its {kind!r} records"
    if leg.name == "root":
        found = [f for r in recs for f in r["found"]]
        assert found == [], f"{attack.id}: {what}: {found}"


def plant_reference_copies(token: str) -> list[Path]:
    """World-readable copies of the reference's part1/utils.py where a course machine often has one:
    /tmp, a home folder, beside the checkout. Returns the folders to remove."""
    folders = [Path(tempfile.gettempdir()) / f"ag-planted-{token}", Path("/home") / f"agvictim-{token[:8]}",
               ROOT.parent / f"ag-planted-{token}"]
    for folder in folders:
        target = folder / "solutions" / "part1" / "utils.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "solutions" / "part1" / "utils.py", target)
        for path in [folder, *folder.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return folders


def run_attack(attack: Attack, leg: Leg) -> None:
    target = attack.target
    base_scores = baseline_scores(leg, target)
    listener = Listener() if "no_connection" in attack.checks else None
    ws = make_workspace(leg, listener.port if listener else 9)
    pwned = Path(f"/tmp/pwned-{ws.token}")
    site_pth = [Path(p) / f"ag_attack_{ws.token}.pth" for p in {sys.prefix, sys.base_prefix}]
    try:
        build_submission(ws, leg, target, attack)
        sub_before = sha_tree(ws.submission)
        keys_before = sha_files(ROOT, KEY_FILES)
        copy_before = sha_files(leg.repo, KEY_FILES) if leg.repo != ROOT else keys_before
        tracked = tracked_files() if "tree_intact" in attack.checks else []
        planted = plant_reference_copies(ws.token) if "planted_copies" in attack.checks else []

        try:
            results, wall = leg.grade(ws.submission, ws.results, attack.selection, ws.home)
        finally:
            for folder in planted:
                shutil.rmtree(folder, ignore_errors=True)
        written = ws.results.read_bytes()
        time.sleep(attack.settle_s)
        alive = survivors(ws, leg)

        # --- the attack really ran (so the assertions below test something)
        assert ws.records("start"), f"{attack.id}: the attack code never ran (no 'start' record in the probe log)"

        # --- score: no more than the unimplemented function's, check by check
        scores = {t["number"]: t["score"] for t in results["tests"]}
        assert set(scores) == set(attack.selection), f"{attack.id}: graded {sorted(scores)}, expected {attack.selection}"
        gained = {n: (s, base_scores[n]) for n, s in scores.items() if s > base_scores[n] + 1e-9}
        assert not gained, f"{attack.id}: scored more than the baseline on {gained} (score, baseline)"

        # --- the grader wrote this file: its own fields and notes, the attack's outcome explained
        assert "sandbox" in results.get("extra_data", {}), f"{attack.id}: results lack the grader's sandbox report"
        for t in results["tests"]:
            # every selected check of the attacked function names it (others are selected to install stand-ins)
            assert t["extra_data"]["check_id"] and t["name"], t
            assert target.tag in t["tags"] or t["extra_data"].get("grades") != target.tag, t
            assert t["status"] in ("passed", "failed")
        outputs = "\n".join(t["output"] for t in results["tests"])
        assert re.search(attack.expect, outputs, re.I), (
            f"{attack.id}: no attacked check says what happened (/{attack.expect}/):\n{outputs[:2000]}")

        # --- within its budget, nothing left behind
        bound = bound_for(attack.selection)
        assert wall < bound, f"{attack.id}: the grade took {wall:.1f} s, over its bound of {bound:.0f} s"
        assert not alive, f"{attack.id}: processes survived the run: {alive}"

        # --- attack-specific facts
        if "no_forgery" in attack.checks or "results_stable" in attack.checks:
            assert f"FORGED-{ws.token}" not in json.dumps(results), f"{attack.id}: forged content in the results"
        if "results_stable" in attack.checks:
            later = ws.results.read_bytes()
            assert later == written, f"{attack.id}: the results file changed after the grader finished"
            validate(json.loads(later))
        if "not_pwned" in attack.checks:
            assert not pwned.exists(), f"{attack.id}: code planted by the submission ran ({pwned} exists)"
            assert not any(p.exists() for p in site_pth), f"{attack.id}: a .pth file was planted in site-packages"
        if "nothing_read" in attack.checks:
            # user leg: the worker runs as the grading user and can read the grader's files (out of
            # scope); the score assertion above is what holds: reading gains nothing by itself.
            root_found_nothing(ws, attack, leg, "read", "the worker read secrets")
        if "nothing_written" in attack.checks:
            recs = ws.records("write")
            assert recs, f"{attack.id}: the attack did not report what it wrote"
            wrote = [w for r in recs for w in r["wrote"]]
            if leg.name == "root":
                assert wrote == [], f"{attack.id}: the worker changed grader files: {wrote}"
            else:  # the grading user owns its results folder; nothing else may change
                assert [w for w in wrote if not w.startswith(str(ws.home))] == [], wrote
            assert sha_files(ROOT, KEY_FILES) == keys_before, f"{attack.id}: a key file of the checkout changed"
            assert sha_files(leg.repo, KEY_FILES) == copy_before, f"{attack.id}: a key file of the grader changed"
        if "tree_intact" in attack.checks:
            recs = ws.records("rmtree")
            assert recs, f"{attack.id}: the attack did not report what it deleted"
            missing = [f for f in tracked if not (ROOT / f).exists()]
            assert not missing, f"{attack.id}: tracked files of the checkout were deleted: {missing[:10]}"
            assert sha_tree(ws.submission) == sub_before, f"{attack.id}: the submission folder changed"
            assert sha_files(leg.repo, KEY_FILES) == copy_before, f"{attack.id}: the grader's files changed"
            if leg.name == "root":  # the staging folder is root's and read-only: the worker's imports stay intact
                for rec in recs:
                    assert rec["here"] in rec["still_there"] and rec["stage"] in rec["still_there"], rec
        if "planted_copies" in attack.checks:
            root_found_nothing(ws, attack, leg, "walked", "the worker found reference copies")
        if "output_cut" in attack.checks:
            flooded = [t for t in results["tests"] if "FLOOD" in t["output"]]
            assert flooded, f"{attack.id}: the student's output is not shown at all"
            assert all(len(t["output"]) <= 100_000 for t in results["tests"])
            assert len(json.dumps(results)) < 1_000_000, f"{attack.id}: results of {len(json.dumps(results))} bytes"
        if listener is not None:
            arrivals = listener.arrivals()
            isolated = any("without network" in line for line in results["extra_data"]["sandbox"])
            if isolated:
                assert not arrivals, f"{attack.id}: the worker reached 127.0.0.1: {arrivals}"
                assert not any(r["connected"] for r in ws.records("net")), ws.records("net")
            else:  # only a user-mode grader on a kernel without unprivileged namespaces; it must say so
                assert leg.name == "user" and any("WARNING: workers have network access" in line
                                                   for line in results["extra_data"]["sandbox"])
        print(f"\n[attack] {leg.name:<4} {attack.id:<28} score {sum(scores.values()):.2f} "
              f"(baseline {sum(base_scores[n] for n in attack.selection):.2f}) wall {wall:.1f} s (bound {bound:.0f} s)")
    finally:
        kill_survivors(ws)
        if listener is not None:
            listener.close()
        for p in [pwned, *site_pth]:
            if p.exists():
                p.unlink()
        shutil.rmtree(ws.base, ignore_errors=True)


# ----------------------------------------------------------------------------- tests


def test_catalogue_builds_every_attack(tmp_path: Path) -> None:
    """Fast: each attack's source is valid Python with every placeholder filled, on both targets' files."""
    assert {a.target.name for a in ATTACKS} == set(TARGETS)
    for attack in ATTACKS:
        base = (SOLUTIONS / attack.target.part / attack.target.file).read_text(encoding="utf-8")
        fill = {k: "/x" for k in ("PROBE", "TOKEN", "ROOT", "REAL_ROOT", "RESULTS", "SUBMISSION")} | {"PORT": "9"}
        text = attack.source(base, fill)
        compile(text, f"{attack.id}.py", "exec")
        assert "_ag_note('start'" in text
        assert set(attack.selection) <= set(attack.target.only)
        assert bound_for(attack.selection) < 180
    for target in TARGETS.values():
        base = (SOLUTIONS / target.part / target.file).read_text(encoding="utf-8")
        compile(replace_body(base, target.function, BASELINE_BODY), "baseline.py", "exec")


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_attack_as_root(attack: Attack, root_leg: Leg) -> None:
    run_attack(attack, root_leg)


@pytest.mark.slow
@pytest.mark.parametrize("attack", USER_LEG, ids=lambda a: a.id)
def test_attack_as_user(attack: Attack, user_leg: Leg) -> None:
    run_attack(attack, user_leg)


def test_user_leg_covers_every_defence() -> None:
    """The user leg's subset is chosen per defence; attacks left out say why."""
    chosen = {a.id for a in USER_LEG}
    for needed in ("forge_results_import_exit", "infinite_loop_call", "memory_bomb", "process_bomb_sleepers",
                   "detached_rewriter", "output_flood", "socket_localhost", "monkeypatch_comparisons", "rmtree_everything"):
        assert needed in chosen
    for a in ATTACKS:
        assert a.user_leg is True or a.user_leg is False or len(str(a.user_leg)) > 20
