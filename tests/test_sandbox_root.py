"""Root mode (Gradescope, CI): the sandbox user, no network, protected paths, process limits."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from autograder.sandbox import SandboxPolicy, StudentError, protect_paths, restore_protected_paths
from tests.sandbox_fixtures.support import light_worker, stage  # noqa: F401

pytestmark = [
    pytest.mark.exclusive,  # the sandbox user's limits and timings: alone (tests/conftest.py)
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="root mode needs root (the sandbox user, namespaces)"),
]


def test_worker_runs_as_the_sandbox_user(light_worker):
    who = light_worker.call("utils.whoami")
    pw = pwd.getpwnam(light_worker.policy.user)
    assert who["uid"] == who["euid"] == pw.pw_uid != 0
    assert who["gid"] == pw.pw_gid and who["groups"] in ([], [pw.pw_gid])
    assert os.stat(f"/proc/{light_worker.pid}").st_uid == pw.pw_uid  # seen from outside too
    assert any(f"uid {pw.pw_uid}" in line for line in light_worker.policy.describe())


def test_no_network_even_to_localhost(light_worker):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        result = light_worker.call("utils.connect", port)
    finally:
        server.close()
    assert result != 0
    assert os.readlink(f"/proc/{light_worker.pid}/ns/net") != os.readlink("/proc/self/ns/net")


@pytest.fixture
def shared_fs_worker(stage):
    """A worker without the private filesystem view (the fallback where mount namespaces are not
    allowed): only permissions protect the grader's files."""
    import dataclasses

    from tests.sandbox_fixtures.support import LIMITS, policy

    from autograder.sandbox import Worker

    w = Worker(stage / "part_fake", stage, LIMITS, dataclasses.replace(policy(), private_filesystem=False), preload=())
    yield w
    w.close()


def test_protected_paths_are_unreadable(shared_fs_worker):
    light_worker = shared_fs_worker
    base = Path(tempfile.mkdtemp(prefix="ag-secret-"))
    try:
        os.chmod(base, 0o755)
        secret_dir = base / "solutions"
        secret_dir.mkdir(mode=0o755)
        secret = secret_dir / "utils.py"
        secret.write_text("THE REFERENCE")
        os.chmod(secret, 0o644)
        loose = base / "results.json"
        loose.write_text("{}")
        os.chmod(loose, 0o644)
        # Control: before protect_paths the worker can read them (so it is protect_paths that blocks).
        assert light_worker.call("utils.read_file", str(secret)) == "THE REFERENCE"
        assert protect_paths([secret_dir, loose, base / "missing"]) == [secret_dir.resolve(), loose.resolve()]
        for path in (secret, loose):
            with pytest.raises(StudentError) as info:
                light_worker.call("utils.read_file", str(path))
            assert info.value.type_name == "PermissionError"
        with pytest.raises(StudentError, match="PermissionError"):
            light_worker.call("utils.write_file", str(loose), "{\"score\": 100}")
        assert loose.read_text() == "{}"
        restore_protected_paths()  # local runs leave the checkout's modes as they were
        assert (secret_dir.stat().st_mode & 0o777, loose.stat().st_mode & 0o777) == (0o755, 0o644)
        assert light_worker.call("utils.read_file", str(secret)) == "THE REFERENCE"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_protect_paths_refuses_to_hide_the_interpreter():
    import sys

    with pytest.raises(ValueError, match="Python installation"):
        protect_paths([Path(sys.prefix).parent])


def test_staging_is_read_only_for_workers(light_worker, stage):
    # Root owns it (PermissionError); in the private view it is also mounted read-only.
    with pytest.raises(StudentError, match="PermissionError|Read-only file system"):
        light_worker.call("utils.write_file", str(stage / "part_fake" / "utils.py"), "hacked")
    with pytest.raises(StudentError, match="PermissionError|Read-only file system"):
        light_worker.call("utils.write_file", str(stage / "_ag_worker" / "protocol.py"), "hacked")
    assert light_worker.call("utils.write_file", "scratch.txt", "ok") is True  # its own scratch folder


def test_grader_files_stay_out_of_reach(light_worker):
    # The grading process's environment is not readable by the sandbox user.
    with pytest.raises(StudentError, match="PermissionError"):
        light_worker.call("utils.read_file", f"/proc/{os.getpid()}/environ")


def test_policy_detect_reads_the_config():
    pol = SandboxPolicy.detect({"user": "agsandbox", "network": True})
    assert pol.is_root and pol.network
    assert any("network access" in line for line in pol.describe())


def test_concurrent_runs_share_the_protection(tmp_path: Path, monkeypatch):
    """Two grading runs protect the same folder: the one finishing first must not make it
    readable under the other; the last one restores the original mode, also when the
    other run died without restoring (SIGKILL)."""
    import subprocess
    import sys

    import autograder.sandbox.policy as policy

    registry = tmp_path / "registry.json"
    monkeypatch.setattr(policy, "_REGISTRY", registry)
    secret = tmp_path / "secret"
    secret.mkdir()
    os.chmod(secret, 0o755)
    other = ("import sys, autograder.sandbox.policy as p; from pathlib import Path; "
             f"p._REGISTRY = Path({str(registry)!r}); p.protect_paths([{str(secret)!r}]); "
             "sys.exit(0) if sys.argv[1] == 'die' else p.restore_protected_paths()")

    def mode() -> int:
        return secret.stat().st_mode & 0o777

    protect_paths([secret])
    assert mode() == 0o700
    subprocess.run([sys.executable, "-c", other, "restore"], check=True, cwd=Path(__file__).parent.parent)
    assert mode() == 0o700, "a run that finished first made the folder readable under a running one"
    restore_protected_paths()
    assert mode() == 0o755

    subprocess.run([sys.executable, "-c", other, "die"], check=True, cwd=Path(__file__).parent.parent)
    assert mode() == 0o700  # the dead run left it protected, with its record
    protect_paths([secret])
    restore_protected_paths()
    assert mode() == 0o755, "the original mode was lost after a run died without restoring"


NEEDLE = "# BEGIN SOLUTION planted reference copy"


def _plant(folder: Path) -> Path:
    """A world-readable copy of a reference utils.py (what a second checkout or an unpacked zip leaves)."""
    target = folder / "solutions" / "part1" / "utils.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"def KLD(mean, log_std):\n    {NEEDLE}\n    return 0\n")
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def test_workers_see_only_what_they_need(light_worker, shared_fs_worker):
    """The filesystem-walking thief finds no planted reference copy: in /tmp, in a home folder,
    beside the checkout. /home does not exist for the worker and /root shows at most the Python
    installation; the worker still runs (its Python, the staging folder, its scratch folder)."""
    repo = Path(__file__).resolve().parent.parent
    places = [Path(tempfile.mkdtemp(prefix="ag-planted-")), Path("/home") / f"agvictim-{os.getpid()}",
              repo.parent / f"ag-planted-beside-{os.getpid()}"]
    try:
        planted = [_plant(p) for p in places]
        for p in places:
            os.chmod(p, 0o755)
        # Control: without the private view the thief finds every copy (so the test can fail).
        roots = [str(p) for p in places]
        assert sorted(shared_fs_worker.call("utils.find_files", "utils.py", NEEDLE, roots)) == sorted(map(str, planted))
        assert light_worker.policy.probe()["fs"] == "private", light_worker.policy.probe()
        assert light_worker.call("utils.find_files", "utils.py", NEEDLE) == []
        assert light_worker.call("utils.find_files", "utils.py", NEEDLE, roots) == []
        with pytest.raises(StudentError, match="FileNotFoundError"):
            light_worker.call("utils.listdir", "/home")
        import sys

        python_homes = {Path(p).relative_to("/root").parts[0] for p in (sys.prefix, sys.base_prefix)
                        if Path(p).is_relative_to("/root")}
        if Path("/root").exists():
            try:
                assert set(light_worker.call("utils.listdir", "/root")) <= python_homes
            except StudentError as exc:
                assert exc.type_name == "FileNotFoundError"
        try:
            visible = set(light_worker.call("utils.listdir", str(repo)))
        except StudentError as exc:
            assert exc.type_name == "FileNotFoundError"
            visible = set()
        assert visible <= {".venv", ".venv-cpu"}, visible  # the checkout shows at most its Python
        assert light_worker.call("utils.write_file", "scratch.txt", "ok") is True
        assert any("workers see only" in line for line in light_worker.policy.describe())
    finally:
        for p in places:
            shutil.rmtree(p, ignore_errors=True)


def test_the_private_view_can_be_turned_off_and_says_so():
    import dataclasses

    from tests.sandbox_fixtures.support import policy

    off = dataclasses.replace(policy(), private_filesystem=False)
    assert off.probe()["fs"] == "shared"
    assert any(line.startswith("WARNING: workers can read every world-readable file") for line in off.describe())
