"""Cost of the sandbox: worker start-up and the round trip of a call.

    .venv/bin/python benchmarks/sandbox_overhead.py [--repeat N]

Prints: policy probe, worker start (python + numpy + torch import, as the grader
starts them) and without torch, a KLD call on [64, 20] tensors, a 1 MB and a 64 MB
tensor echoed through the worker, one /proc scan (done every 25 ms during a call),
and the worker's resident memory after start-up.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from autograder.sandbox import Limits, SandboxPolicy, Worker, ensure_interpreter_access, make_staging  # noqa: E402
from autograder.sandbox import procs  # noqa: E402
from autograder.sandbox.policy import _probe_cache  # noqa: E402

FIXTURE = ROOT / "tests" / "sandbox_fixtures" / "part_fake"


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median, min) seconds of ``fn()`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="worker starts to time (default 3)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ag-bench-"))
    os.chmod(base, 0o755)
    stage = make_staging({"part1": FIXTURE}, base / "stage")
    policy = SandboxPolicy.detect()
    if policy.is_root:
        ensure_interpreter_access(policy.user)
    limits = Limits(memory_mb=4096, threads=1)
    rows = []
    try:
        t0 = time.perf_counter()
        _probe_cache.clear()
        policy.describe()
        rows.append(("policy probe (once per run)", time.perf_counter() - t0, None))

        for label, preload in (("worker start incl. torch import", ("numpy", "torch")),
                               ("worker start without torch", ())):
            w = Worker(stage / "part1", stage, limits, policy, preload=preload)
            med, low = timed(lambda: (w.close(), w.start()), args.repeat)
            rows.append((label, med, low))
            if preload:
                rss = w.last_stats.get("peak_rss_kb", 0) / 1024
            w.close()

        w = Worker(stage / "part1", stage, limits, policy)
        w.start()
        g = torch.Generator().manual_seed(0)
        mean, log_std = torch.randn(64, 20, generator=g), torch.randn(64, 20, generator=g)
        w.call("utils.KLD", mean, log_std)
        rows.append(("call utils.KLD on [64, 20] (round trip)", *timed(lambda: w.call("utils.KLD", mean, log_std), 200)))
        rows.append(("call utils.identity(1) (round trip)", *timed(lambda: w.call("utils.identity", 1), 200)))
        one_mb = torch.randn(1 << 18, generator=g)
        rows.append(("echo a 1 MB tensor (both ways)", *timed(lambda: w.call("utils.identity", one_mb), 50)))
        big = torch.randn(16 << 20, generator=g)
        rows.append(("echo a 64 MB tensor (both ways)", *timed(lambda: w.call("utils.identity", big), 5)))
        rows.append(("one /proc scan for the memory poll", *timed(procs.scan, 50)))
        w.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{'root mode' if policy.is_root else 'user mode'}, {len(procs.scan())} processes visible")
    for line in policy.describe():
        print(f"  {line}")
    print(f"{'measurement':45s} {'median':>10s} {'min':>10s}")
    for label, med, low in rows:
        print(f"{label:45s} {med * 1000:8.2f} ms " + (f"{low * 1000:8.2f} ms" if low is not None else ""))
    print(f"{'worker RSS after start-up (torch imported)':45s} {rss:8.0f} MB")


if __name__ == "__main__":
    main()
