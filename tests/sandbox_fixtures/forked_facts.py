"""``python -m tests.sandbox_fixtures.forked_facts``: a grader-like process that starts the fork
server first (unless ``AG_FORK_WORKERS=0``), then two workers one after the other on the fake
part, and prints what each saw of itself (``utils.interpreter_facts``) as JSON on stdout.
``AG_TEST_KILL_SERVER=1`` kills the server between the two."""
from __future__ import annotations

import json
import os
import shutil
import signal

from autograder.sandbox import forkserver

forkserver.start()  # first, as the grader does

from autograder.sandbox import Worker  # noqa: E402
from tests.sandbox_fixtures.support import LIMITS, make_stage, policy  # noqa: E402


def main() -> None:
    stage = make_stage()
    out = {"pid": os.getpid(), "serving": forkserver.serves(("numpy", "torch")), "workers": []}
    try:
        for _ in range(2):
            with Worker(stage / "part_fake", stage, LIMITS, policy()) as w:
                facts = w.call("utils.interpreter_facts", seed=None)  # unseeded: the inherited state
                facts.update(token=w._token, scratch=str(w._scratch), stage=str(stage), worker_pid=w.pid,
                             forked=type(w._proc).__name__ == "Child")
                out["workers"].append(facts)
            if os.environ.get("AG_TEST_KILL_SERVER") == "1" and forkserver._server is not None:
                os.kill(forkserver._server.pid, signal.SIGKILL)  # the next worker must still start
                os.waitpid(forkserver._server.pid, 0)
    finally:
        shutil.rmtree(stage.parent, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
