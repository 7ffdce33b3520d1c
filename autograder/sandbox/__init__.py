"""Running untrusted student code: a trusted grader and untrusted workers, kept apart.

Modelled on PrairieLearn's Python grader. Student code is imported only in worker
processes; the grading process (pytest, torch, the reference solution) talks to them
through a protocol that cannot execute code when read, and enforces every limit from
the outside.

Modules
-------
``protocol``     frames (JSON header + raw buffers) and the value encoding, shared by both
                 sides; no pickle, strict validation, tensors rebuilt as plain tensors
``worker_main``  the untrusted worker program (copied into the staging folder)
``launcher``     trusted first stage of a worker: network namespace, rlimits, privilege
                 drop, ``PR_SET_NO_NEW_PRIVS``, then ``execve`` of the worker
``forkserver``   the same steps in a worker forked from a server that the grader starts
                 after importing torch and before it loads anything of the grade (a fork
                 instead of an import per worker start; the exec'd launcher is the fallback)
``client``       :class:`Worker` / :class:`WorkerPool` and the exceptions: requests,
                 time and memory enforcement, output capture
``procs``        ``/proc`` scanning, subreaper, process-tree RSS and killing
``policy``       :class:`SandboxPolicy` (root vs user mode, environment, probing),
                 :func:`ensure_sandbox_user`, :func:`protect_paths`
``staging``      :func:`make_staging`: the folder tree workers import from
``drivers/``     worker-side instructor helpers (``drivers_common.py``; per-part
                 ``drivers_partN.py`` go here too), called as ``"@drivers_common.state"``

Security choices
----------------
* **No code from the worker is ever executed by the grader.** Replies are JSON plus
  byte buffers; tensors are rebuilt with ``numpy.frombuffer`` -> ``torch.from_numpy``
  from an allow-list of dtypes, so they are plain ``torch.Tensor`` objects (a subclass
  with a lying ``__eq__`` arrives as a plain tensor). Objects that are not plain data
  stay in the worker and come back as :class:`Handle`. Sizes (512 MB a message), depth,
  element counts, shapes and bool contents are validated; anything else is a
  ``ProtocolError``. Everything a worker sends is untrusted *data*: student code shares
  the worker process and can forge replies on fd 4 (a forged or out-of-order reply is
  refused by its sequence number, the worker is killed), patch the worker or the drivers.
  Checks therefore compute every score in the grader, from data.
* **Limits enforced from outside.** A per-call wall-clock deadline and a 25 ms poll of the
  RSS of the worker's whole process tree (PSS when it has several processes) in the
  grader; on overrun the tree is SIGKILLed (SIGTERM handlers do not help). The worker
  also reports its own per-call peak RSS (``VmHWM``, reset before each call) so short
  spikes between polls are caught deterministically. Backstops inside the worker:
  ``RLIMIT_DATA`` = memory limit + 1 GB (measured: torch's CUDA build has ~0.8 GB of data
  segment after import and runs fine under it; ``RLIMIT_AS`` breaks importing torch below
  ~4 GB because it reserves ~3.2 GB of address space, so it is not used),
  ``RLIMIT_CORE`` 0, ``RLIMIT_NOFILE``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` (root mode: the
  sandbox user's total; user mode: the user's current threads + the budget; it counts
  threads, a torch worker with 4 threads has ~8), and ``oom_score_adj`` 1000 so that if
  the machine runs out of memory anyway the kernel kills a worker, not the grader.
* **Frozen between calls.** After each reply the worker's process group gets SIGSTOP and
  before the next request SIGCONT: student threads and children cannot burn CPU, grow
  memory or print while the grader works. Processes that left the group (``setsid``) are
  watched by an idle monitor thread (memory, every 0.2 s) and killed with the worker.
* **Nothing escapes the kill.** The grader is a child subreaper (``PR_SET_CHILD_SUBREAPER``),
  so double-forked / ``setsid`` descendants are re-parented to it; they are found by
  ancestry, by the sandbox uid (root mode) or by the worker's ``AG_SANDBOX_TOKEN``
  environment variable, and :func:`kill_all_descendants` (called at the end of a run)
  kills and reaps them all.
* **Output floods** are drained continuously and only the head and tail are kept.
* **Root mode** (Gradescope): workers run as ``agsandbox`` without supplementary groups
  or capabilities, with ``PR_SET_NO_NEW_PRIVS``, in their own network namespace (loopback
  down), with a clean environment and a private scratch HOME/TMPDIR (also their cwd);
  :func:`protect_paths` removes group/other access from the solution, checks, config and
  results (:func:`restore_protected_paths` undoes it for local runs). The staging folder
  holds only the student's graded files over the handout, owned by root, read-only;
  symbolic links in a submission are never followed. The worker's uid and network
  namespace are verified from ``/proc`` after start-up. The sandbox user must be able to
  run the interpreter: :func:`ensure_interpreter_access` (setup.sh) adds ``o+x`` to
  folders like ``/root`` when Python lives in ``/root/.pyenv``; a Worker refuses to start
  (SandboxSetupError) otherwise. If no network namespace can be made (a container
  without CAP_SYS_ADMIN) workers keep the network and ``describe()`` says so, unless
  ``require_network_isolation`` is set.
* **User mode** (a laptop): same design without the user switch; the network is cut with
  an unprivileged user+network namespace where the kernel allows it, and
  :meth:`SandboxPolicy.describe` says plainly what is and is not isolated.
* Workers start with ``python -s -B`` (no user site, no bytecode) and a fully rebuilt
  environment; ``-I`` is not used because it would drop ``PYTHONHASHSEED=0``, which
  makes set/dict order of student code deterministic. torch and numpy are imported
  before the part folder joins ``sys.path``, so a student ``torch.py`` cannot replace them.

Use
---
::

    stage = make_staging({"part1": overlay / "part1"}, Path(tmp) / "stage")   # tmp: 0755
    policy = SandboxPolicy.detect(config.get("worker"))
    worker = Worker(stage / "part1", stage, Limits(call_timeout_s=60, memory_mb=1500), policy)
    kl = worker.call("utils.KLD", mean, log_std, seed=0)          # a plain torch.Tensor
    vae = worker.call("train_torch.VAE", 32, 20, 1e-3)            # a Handle
    l_rec, l_reg, bpd = worker.method(vae, "forward", imgs)
    enc = worker.getattr(vae, "encoder")                          # a Handle
    state = worker.call("@drivers_common.state", vae)              # dict of tensors
    worker.output(); worker.close(); kill_all_descendants()

Failures are exceptions deriving from :class:`WorkerFailure` (student's fault, costs the
check); :class:`SandboxSetupError` is the grader's (or machine's) fault.
"""
from .client import (
    HandleError,
    Limits,
    OutputBuffer,
    StudentError,
    Worker,
    WorkerDied,
    WorkerFailure,
    WorkerMemoryExceeded,
    WorkerOutputError,
    WorkerPool,
    WorkerTimeout,
)
from .policy import (
    SandboxPolicy,
    SandboxSetupError,
    ensure_interpreter_access,
    ensure_sandbox_user,
    protect_paths,
    protected_paths,
    restore_protected_paths,
)
from .procs import become_subreaper, kill_all_descendants
from .protocol import Handle, ProtocolError
from .staging import make_staging

__all__ = [
    "Worker", "WorkerPool", "Limits", "SandboxPolicy", "Handle", "OutputBuffer",
    "WorkerFailure", "StudentError", "WorkerTimeout", "WorkerMemoryExceeded", "WorkerDied",
    "WorkerOutputError", "ProtocolError", "HandleError", "SandboxSetupError",
    "make_staging", "protect_paths", "protected_paths", "restore_protected_paths", "kill_all_descendants", "become_subreaper",
    "ensure_sandbox_user", "ensure_interpreter_access",
]
