"""Shared helpers of the sandbox tests (tests/test_sandbox_*.py)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from autograder.sandbox import Limits, SandboxPolicy, Worker, ensure_interpreter_access, make_staging

FIXTURES = Path(__file__).resolve().parent
PARTS = {"part_fake": FIXTURES / "part_fake", "part_shadow": FIXTURES / "part_shadow"}
LIMITS = Limits(call_timeout_s=20, memory_mb=1200, threads=1, output_bytes=4096, max_processes=256,
                startup_timeout_s=60)
IS_ROOT = os.geteuid() == 0


def make_stage() -> Path:
    """A staging tree in a fresh 0755 folder under /tmp (the sandbox user must traverse it)."""
    base = Path(tempfile.mkdtemp(prefix="ag-sandbox-test-"))
    os.chmod(base, 0o755)
    return make_staging(PARTS, base / "stage")


def policy() -> SandboxPolicy:
    pol = SandboxPolicy.detect()
    if pol.is_root:
        assert ensure_interpreter_access(pol.user) == []  # what setup.sh does
    return pol


@pytest.fixture(scope="module")
def stage() -> Iterator[Path]:
    path = make_stage()
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def torch_worker(stage: Path) -> Iterator[Worker]:
    """A worker with torch preloaded, shared by a module's tests."""
    w = Worker(stage / "part_fake", stage, LIMITS, policy())
    yield w
    w.close()


@pytest.fixture
def light_worker(stage: Path) -> Iterator[Worker]:
    """A worker without torch (starts in ~0.1 s): for tests that kill and restart workers."""
    w = Worker(stage / "part_fake", stage, LIMITS, policy(), preload=())
    yield w
    w.close()


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
