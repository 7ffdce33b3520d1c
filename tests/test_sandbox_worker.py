"""Workers against well-behaved and hostile student code (runs as root and as a normal user).

The fake student module is tests/sandbox_fixtures/part_fake/utils.py. Tests that kill
workers use a worker without torch preloaded, which restarts in a fraction of a second.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
import torch

from autograder.sandbox import (
    Handle,
    HandleError,
    Limits,
    StudentError,
    Worker,
    WorkerDied,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerOutputError,
    WorkerPool,
    WorkerTimeout,
    kill_all_descendants,
)
from autograder.sandbox import procs
from tests.sandbox_fixtures.support import LIMITS, alive, light_worker, policy, stage, torch_worker  # noqa: F401

pytestmark = pytest.mark.exclusive  # fork and memory bombs, timings: alone (tests/conftest.py)


def test_values_cross_both_ways(torch_worker):
    values = [None, True, 3, -0.0, float("nan"), float("inf"), "ü", b"\x00\x01", [1, (2,)], {"k": {"j": []}},
              torch.tensor([float("nan"), float("-inf"), 1e-40, -0.0]), torch.arange(6, dtype=torch.int16).view(2, 3).t(),
              torch.tensor([True, False]), torch.ones(2, dtype=torch.bfloat16), np.arange(4.0)]
    back = torch_worker.call("utils.identity", values)
    assert len(back) == len(values)
    for a, b in zip(values, back):
        if isinstance(a, torch.Tensor):
            assert type(b) is torch.Tensor and a.dtype == b.dtype
            assert a.contiguous().view(-1).view(torch.uint8).equal(b.view(-1).view(torch.uint8))
        elif isinstance(a, np.ndarray):
            assert np.array_equal(a, b) and a.dtype == b.dtype
        elif isinstance(a, float) and math.isnan(a):
            assert math.isnan(b)
        else:
            assert a == b and type(a) is type(b)
    assert torch_worker.call("utils.echo", 1, x=2) == {"args": [1], "kwargs": {"x": 2}}
    assert torch_worker.call_with("utils.echo", [], {"seed": 1, "timeout": 2}) == {"args": [], "kwargs": {"seed": 1, "timeout": 2}}


def test_kld_matches_and_one_mb_tensor(torch_worker):
    g = torch.Generator().manual_seed(1)
    mean, log_std = torch.randn(64, 20, generator=g), torch.randn(64, 20, generator=g)
    expected = 0.5 * torch.sum(torch.exp(2 * log_std) + mean ** 2 - 1 - 2 * log_std, dim=-1)
    assert torch.equal(torch_worker.call("utils.KLD", mean, log_std), expected)
    big = torch.randn(1 << 18, generator=g)  # 1 MB of float32
    assert torch.equal(torch_worker.call("utils.identity", big), big)


def test_student_error_has_type_message_traceback(torch_worker):
    with pytest.raises(StudentError) as info:
        torch_worker.call("utils.not_done", torch.zeros(1), torch.zeros(1))
    err = info.value
    assert isinstance(err, WorkerFailure)
    assert err.type_name == "NotImplementedError"
    assert "not implemented yet" in err.message
    assert str(err).startswith("not_done raised NotImplementedError: KLD (Q1.8) is not implemented yet")
    assert "part_fake/utils.py" in err.traceback and "worker_main" not in err.traceback
    with pytest.raises(StudentError, match="no attribute 'missing'"):
        torch_worker.call("utils.missing")
    with pytest.raises(StudentError) as info:
        torch_worker.import_module("broken_import")
    assert info.value.type_name == "ValueError" and "broken_import.py" in info.value.traceback
    assert torch_worker.call("utils.identity", 5) == 5  # the worker survived all of it


def test_handle_lifecycle(torch_worker):
    h = torch_worker.call("utils.Counter", 10)
    assert isinstance(h, Handle) and h.type_name == "utils.Counter"
    assert torch_worker.method(h, "add", 5) == 15
    assert torch_worker.getattr(h, "value") == 15
    assert torch_worker.getattr(h, "items") == {"a": 1}
    assert torch_worker.method(h, "me") == h  # the same object keeps its handle
    assert torch_worker.call("@drivers_common.apply", torch_worker.getattr(h, "add"), 1) == 16
    model = torch_worker.call("utils.make_model")
    state = torch_worker.call("@drivers_common.state", model)
    assert set(state) == {"0.weight", "0.bias"} and type(state["0.weight"]) is torch.Tensor
    x = torch.randn(2, 4)
    expected = torch.tanh(x @ state["0.weight"].T + state["0.bias"])
    assert torch.allclose(torch_worker.call("@drivers_common.apply", model, x), expected)
    linear = torch_worker.getattr(model, "0")
    assert linear.type_name.endswith("Linear")
    torch_worker.release(h)
    with pytest.raises(HandleError):
        torch_worker.method(h, "add")
    with pytest.raises(HandleError):
        torch_worker.call("utils.identity", h)
    with pytest.raises(HandleError):
        torch_worker.call("utils.identity", Handle(12345, "forged"))


def test_non_plain_results_become_handles_and_tensors_become_plain(torch_worker):
    fn, d, obj = torch_worker.call("utils.lambda_and_dict")
    assert [fn.type_name, d.type_name, obj.type_name] == ["function", "dict", "object"]
    back = torch_worker.call("utils.liar")
    assert type(back) is torch.Tensor and not bool((back == torch.ones(3)).all())
    got = torch_worker.call("utils.param_and_grad")
    assert type(got["param"]) is torch.Tensor and not got["param"].requires_grad
    assert not got["with_grad"].requires_grad and got["with_grad"].tolist() == [3.0, 3.0]
    grads = torch_worker.call("@drivers_common.call_with_grads", "utils.KLD", torch.zeros(3), torch.zeros(3))
    assert grads["grads"][1].tolist() == [0.0, 0.0, 0.0] and grads["output"].item() == 0.0


def test_unsendable_result_is_an_output_error_and_worker_survives(torch_worker):
    with pytest.raises(WorkerOutputError, match="deeper"):
        torch_worker.call("utils.cycle")
    assert torch_worker.call("utils.identity", 1) == 1


def test_output_capture(torch_worker):
    torch_worker.output()
    assert torch_worker.call("utils.chatty", 1) == 2
    assert torch_worker.last_call_output() == "hello from the student\nto stderr\n"
    torch_worker.call("utils.identity", 0)
    assert torch_worker.last_call_output() == ""
    assert torch_worker.call("utils.chatty", 2) == 3
    assert torch_worker.output().count("hello from the student") == 2  # since the last output()
    assert torch_worker.output() == ""
    with pytest.raises(StudentError) as info:
        torch_worker.call("utils.not_done", 1, 2)
    assert info.value.output == ""


def test_seeds_make_calls_reproducible(torch_worker):
    a = torch_worker.call("utils.draws", seed=5)
    assert len(a) == 3 and torch_worker.call("utils.draws", seed=5) == a
    assert torch_worker.call("utils.draws", seed=6) != a


def test_clean_environment(torch_worker, monkeypatch):
    assert torch_worker.call("utils.env", "PYTHONHASHSEED") == "0"
    assert torch_worker.call("utils.env", "OMP_NUM_THREADS") == "1"
    assert torch_worker.call("utils.env", "PATH") == "/usr/local/bin:/usr/bin:/bin"
    who = torch_worker.call("utils.whoami")
    assert who["cwd"] == who["home"] and "_scratch" in who["home"]
    monkeypatch.setenv("AG_GRADER_SECRET", "x")
    torch_worker.close()  # a fresh worker, started while the grader has the secret
    assert torch_worker.call("utils.env", "AG_GRADER_SECRET") is None


def test_student_files_cannot_shadow_trusted_modules(stage):
    with Worker(stage / "part_shadow", stage, LIMITS, policy()) as w:
        doubled, torch_file, numpy_file, mark = w.call("uses_torch.double", torch.ones(2))
        assert doubled.tolist() == [2.0, 2.0]
        assert "part_shadow" not in torch_file and "part_shadow" not in numpy_file
        assert mark == "student protocol module"  # the student's own protocol.py is theirs


def test_timeout_kills_and_next_call_gets_a_fresh_worker(light_worker):
    assert light_worker.call("utils.identity", 1) == 1
    first_pid = light_worker.pid
    for fn in ("utils.hang", "utils.sleep_forever", "utils.ignore_sigterm_and_hang"):
        t0 = time.monotonic()
        with pytest.raises(WorkerTimeout, match="did not finish within 0.5 s"):
            light_worker.call(fn, timeout=0.5)
        assert time.monotonic() - t0 < 1.5
        assert not alive(first_pid)
        assert light_worker.call("utils.identity", 2) == 2
        assert light_worker.pid != first_pid
        first_pid = light_worker.pid


def test_stale_handles_after_restart(light_worker):
    h = light_worker.call("utils.Counter")
    with pytest.raises(WorkerTimeout):
        light_worker.call("utils.hang", timeout=0.3)
    with pytest.raises(HandleError, match="create the object again"):
        light_worker.method(h, "add")
    h2 = light_worker.call("utils.Counter")
    assert h2.id != h.id and light_worker.method(h2, "add") == 1


@pytest.mark.parametrize("module, status", [("exit_at_import", 0), ("sysexit_at_import", 3)])
def test_exit_at_import_is_worker_died(light_worker, module, status):
    with pytest.raises(WorkerDied) as info:
        light_worker.import_module(module)
    assert info.value.exit_code == status
    with pytest.raises(WorkerDied):
        light_worker.call(f"{module}.anything")
    assert light_worker.call("utils.identity", 1) == 1


def test_exit_in_function_is_worker_died(light_worker):
    with pytest.raises(WorkerDied, match="exited with status 0") as info:
        light_worker.call("utils.exit_now")
    assert info.value.exit_code == 0
    with pytest.raises(WorkerDied, match=r"sys.exit\(4\)") as info:
        light_worker.call("utils.sys_exit")
    assert info.value.exit_code == 4 and "sys_exit" in info.value.traceback
    with pytest.raises(WorkerDied, match="SIGSEGV") as info:
        light_worker.call("utils.kill_self")
    assert info.value.signal == 11
    assert light_worker.call("utils.identity", 1) == 1


def test_memory_bomb_is_stopped(stage):
    limits = Limits(**{**LIMITS.__dict__, "memory_mb": 400})
    with Worker(stage / "part_fake", stage, limits, policy(), preload=()) as w:
        for fn, args, how in (("utils.memory_bomb", (), "measured"),   # RSS poll of the tree
                              ("utils.huge_bytes", (), "allocate"),    # RLIMIT_DATA backstop
                              ("utils.spike", (450,), "MB")):          # poll or the reported peak
            t0 = time.monotonic()
            with pytest.raises(WorkerMemoryExceeded, match="400 MB") as info:
                w.call(fn, *args, timeout=30)
            assert how in str(info.value) and time.monotonic() - t0 < 5
            assert not w.alive or fn == "utils.spike"
        assert w.call("utils.spike", 50) == "survived"


def test_huge_torch_allocation_is_memory_exceeded(stage):
    with Worker(stage / "part_fake", stage, LIMITS, policy()) as w:
        with pytest.raises(WorkerMemoryExceeded, match="could not allocate memory.*DefaultCPUAllocator"):
            w.call("utils.huge_tensor")


def test_output_flood_is_truncated(light_worker):
    t0 = time.monotonic()
    assert light_worker.call("utils.flood", 100) == "done"
    elapsed = time.monotonic() - t0
    out = light_worker.output()
    assert len(out) < LIMITS.output_bytes + 200
    assert "bytes of output dropped" in out and out.rstrip().endswith("THE END")
    dropped = int(out.split("[... ")[1].split(" bytes")[0].replace(",", ""))
    assert dropped > 100 * 10 ** 6
    assert elapsed < 10


def test_double_fork_is_killed_by_close_and_kill_all(light_worker):
    grandchild = light_worker.call("utils.double_fork")
    assert alive(grandchild)
    if procs.become_subreaper():
        assert procs.read_proc(grandchild).ppid == os.getpid()  # adopted by the grader, not init
    light_worker.close()  # the worker's own kill finds the escaped grandchild too
    assert not alive(grandchild)

    light_worker.call("utils.identity", 1)
    grandchild = light_worker.call("utils.double_fork")
    worker_pid = light_worker.pid
    kill_all_descendants()
    for pid in (grandchild, worker_pid):
        assert not os.path.exists(f"/proc/{pid}"), f"process {pid} survived (or was not reaped)"
    assert not light_worker.alive
    assert light_worker.call("utils.identity", 3) == 3  # a fresh worker after the sweep


@pytest.mark.parametrize("kind", ["garbage", "wrong_seq"])
def test_forged_replies_are_refused(light_worker, kind):
    with pytest.raises(WorkerOutputError):
        light_worker.call("utils.forge", kind, timeout=5)
    assert not alive(light_worker.pid or -1)
    assert light_worker.call("utils.identity", 1) == 1


def test_forged_reply_with_right_seq_only_yields_data(light_worker):
    # A student can answer for the worker; that gives them data they could have returned anyway.
    assert light_worker.call("utils.forge", "right_seq") == "forged"
    # The real reply that followed is out of order for the next request: refused, fresh worker.
    with pytest.raises(WorkerOutputError, match="does not answer"):
        light_worker.call("utils.identity", 1)
    assert light_worker.call("utils.identity", 2) == 2


def test_network_is_cut_when_the_policy_says_so(light_worker):
    import socket

    pol = light_worker.policy
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        probe = socket.socket()
        assert probe.connect_ex(("127.0.0.1", port)) == 0  # reachable from the grader
        probe.close()
        result = light_worker.call("utils.connect", port)
    finally:
        server.close()
    if pol.network_mode() is None:
        pytest.skip(f"no network namespace possible here: {pol.probe()['error']}")
    assert result != 0  # ENETUNREACH: loopback is down in the worker's namespace
    assert any("without network" in line for line in pol.describe())


def test_pool_shares_one_worker_per_part(stage):
    with WorkerPool(stage, LIMITS, policy(), preload=()) as pool:
        a = pool.get("part_fake")
        assert pool.get("part_fake") is a and pool["part_shadow"] is not a
        assert a.call("utils.identity", 7) == 7
        with pytest.raises(KeyError):
            pool.get("nope")
    assert not a.alive


def test_describe_is_honest():
    lines = policy().describe()
    assert lines and all(isinstance(line, str) for line in lines)
    if os.geteuid() == 0:
        assert "agsandbox" in lines[0]
    else:
        assert "your own user" in lines[0]


def test_limits_reject_nothing_silently():
    lim = Limits(threads=0)
    assert lim.torch_threads >= 1
    assert lim.rlimits()["data"] == (lim.memory_mb + 1024) << 20
    assert "data" not in Limits(data_slack_mb=None).rlimits()


def test_without_a_namespace_the_policy_says_so(stage, monkeypatch):
    from autograder.sandbox import policy as policy_module

    pol = policy()
    pol = type(pol)(mode=pol.mode, user=pol.user, network=False)
    key = (pol.mode, pol.user, pol.network, pol.private_filesystem)
    monkeypatch.setitem(policy_module._probe_cache, key,
                        {"netns": None, "network": "shared", "error": "simulated: namespaces disabled",
                         "fs": "shared", "fs_error": "simulated: namespaces disabled"})
    assert any(line.startswith("WARNING: workers have network access") and "simulated" in line
               for line in pol.describe())
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        with Worker(stage / "part_fake", stage, LIMITS, pol, preload=()) as w:
            assert w.call("utils.connect", server.getsockname()[1]) == 0  # as described: reachable
    finally:
        server.close()


def test_workers_are_frozen_between_calls(light_worker):
    assert light_worker.call("utils.start_ticker") is True
    before = light_worker.call("utils.ticks")
    time.sleep(0.4)  # a student thread would tick ~300 times here if it could run
    assert light_worker.call("utils.ticks") - before < 50


def test_idle_memory_growth_is_stopped(light_worker):
    child = light_worker.call("utils.grow_later", LIMITS.memory_mb + 200, 0.2)
    deadline = time.monotonic() + 30  # a loaded machine (other grades on every core) allocates slowly
    while light_worker.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not light_worker.alive and "between calls" in light_worker.idle_kill_reason
    while alive(child) and time.monotonic() < deadline:  # the kill may still be freeing memory
        time.sleep(0.05)
    assert not alive(child)
    assert light_worker.call("utils.identity", 1) == 1  # the next call simply gets a fresh worker


def test_process_limit_stops_fork_bombs(stage):
    # Root mode: RLIMIT_NPROC of the sandbox user. User mode: the user's threads now + the budget.
    limits = Limits(**{**LIMITS.__dict__, "max_processes": 40})
    with Worker(stage / "part_fake", stage, limits, policy(), preload=()) as w:
        made = w.call("utils.fork_many", 200)
        assert 0 < made < 40
