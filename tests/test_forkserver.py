"""Workers forked from the grader's fork server look, from inside, like fresh interpreters.

``autograder/sandbox/forkserver.py``: the grader forks a server after importing numpy and torch
and before it loads anything of the grade; workers are forked from it instead of importing
torch again. These tests run a grader-like process (tests/sandbox_fixtures/forked_facts.py)
once with the server and once without (``AG_FORK_WORKERS=0``, the exec'd launcher), with a
variable in its environment that no worker may see, and compare what the workers saw.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

SECRET = "AG_GRADER_SECRET"


def facts(fork: bool, kill_server: bool = False) -> dict:
    env = {**os.environ, SECRET: "never-in-a-worker", "AG_FORK_WORKERS": "1" if fork else "0",
           "AG_TEST_KILL_SERVER": "1" if kill_server else "0"}
    proc = subprocess.run([sys.executable, "-m", "tests.sandbox_fixtures.forked_facts"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both() -> tuple[dict, dict]:
    return facts(fork=True), facts(fork=False)


def _without_scratch(env: dict, facts: dict) -> dict:
    """The environment with the per-worker values (its scratch folder, its token) taken out."""
    return {k: v.replace(facts["scratch"], "<scratch>") for k, v in env.items() if k != "AG_SANDBOX_TOKEN"}


def test_workers_are_forked_when_the_server_runs(both):
    forked, execd = both
    assert forked["serving"] and all(f["forked"] for f in forked["workers"])
    assert not execd["serving"] and not any(f["forked"] for f in execd["workers"])
    for f in forked["workers"] + execd["workers"]:
        assert f["ppid"] == (forked if f in forked["workers"] else execd)["pid"]  # the grader's child
        assert f["sid_is_pid"] and f["threads"] == 1 and f["fds"][:5] == [0, 1, 2, 3, 4]


def test_a_forked_worker_sees_what_an_execd_one_sees(both):
    forked, execd = both
    for f, e in zip(forked["workers"], execd["workers"]):
        for key in ("sys_path", "sys_argv", "autograder_modules", "stdout", "stderr", "dont_write_bytecode", "uid",
                    "fds"):
            assert json.dumps(f[key]).replace(f["stage"], "<stage>") == json.dumps(e[key]).replace(e["stage"], "<stage>"), key
        assert _without_scratch(f["environ"], f) == _without_scratch(e["environ"], e)
        assert f["tempdir"] == f["scratch"] and f["cwd"] == e["cwd"].replace(e["scratch"], f["scratch"])
        # /proc/PID/cmdline: the exec'd worker's, cut to the length of the grader's own
        shown, full = "\0".join(f["cmdline"]), "\0".join(e["cmdline"]).replace(e["stage"], f["stage"])
        assert len(shown) > 20 and full.startswith(shown)
        assert f["autograder_modules"] == []


def test_nothing_of_the_graders_environment_reaches_a_worker(both):
    for run in both:
        for f in run["workers"]:
            shown = f["environ_block"] + f["child_environ_block"] + [f"{k}={v}" for k, v in f["environ"].items()]
            assert not [item for item in shown if SECRET in item]


def test_a_process_a_forked_worker_forks_carries_its_token(both):
    """The orphan check (procs.worker_tree) recognises a worker's escaped processes by the token
    in their initial environment, as it does for an exec'd worker's."""
    for run in both:
        for f in run["workers"]:
            assert f"AG_SANDBOX_TOKEN={f['token']}" in f["child_environ_block"]
            assert f"AG_SANDBOX_TOKEN={f['token']}" in f["environ_block"]


def test_forked_workers_do_not_share_random_state(both):
    forked, _ = both
    a, b = forked["workers"]
    assert a["random"] != b["random"] and a["numpy_random"] != b["numpy_random"]


def test_a_dead_server_costs_only_the_speed():
    """The server killed between two workers (out of memory, say): the next one is exec'd."""
    run = facts(fork=True, kill_server=True)
    first, second = run["workers"]
    assert first["forked"] and not second["forked"]
    assert second["ppid"] == run["pid"] and second["autograder_modules"] == []
