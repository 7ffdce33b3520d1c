"""Worker-side helpers shared by all parts (runs in the worker, next to student code).

Call them from the grader as ``worker.call("@drivers_common.state", handle)``. A handle
argument arrives here as the object itself. Whatever these functions return goes back
as plain data (or as a new handle); it is as untrusted as anything else from the worker,
because student code in the same process can patch this module. Per-part drivers
(``drivers_part1.py``, ...) sit in the same folder and may ``import drivers_common``.
"""
from __future__ import annotations

import importlib
from typing import Any


def resolve(target: str) -> Any:
    """``"utils.KLD"`` -> the function (imports the student module)."""
    module, _, rest = target.partition(".")
    obj: Any = importlib.import_module(module)
    for name in filter(None, rest.split(".")):
        obj = getattr(obj, name)
    return obj


def apply(obj: Any, *args: Any, **kwargs: Any) -> Any:
    """``obj(*args, **kwargs)``: calls a module (its ``forward`` with hooks) or any callable."""
    return obj(*args, **kwargs)


def attr(obj: Any, path: str) -> Any:
    """A dotted attribute path: ``attr(vae, "encoder.net.0.weight")``."""
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def state(module: Any) -> dict[str, Any]:
    """A module's ``state_dict`` as plain CPU tensors."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_state(module: Any, tensors: dict[str, Any], strict: bool = True) -> list[list[str]]:
    """``module.load_state_dict``; returns [missing keys, unexpected keys]."""
    result = module.load_state_dict(tensors, strict=strict)
    return [list(result.missing_keys), list(result.unexpected_keys)]


def num_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def plain(value: Any) -> Any:
    """What a driver sends back: a tensor as a detached CPU copy, anything else as it is."""
    import torch

    return value.detach().cpu().clone() if isinstance(value, torch.Tensor) else value


def error_text(exc: BaseException, limit: int = 600) -> str:
    """A student exception as the one line a check's message quotes."""
    return f"{type(exc).__name__}: {exc}"[:limit]


def call_with_grads(target: str, *inputs: Any, **kwargs: Any) -> dict[str, Any]:
    """Call ``target(*inputs)`` with gradients on the floating inputs; back-propagate ``sum(output)``.

    Returns ``{"output": ..., "grads": [grad of each input or None]}``: how a check sees
    whether gradients reach the inputs (e.g. through ``sample_reparameterize``).
    """
    import torch

    xs = [x.detach().clone().requires_grad_(True) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
          for x in inputs]
    out = resolve(target)(*xs, **kwargs)
    total = out.sum() if isinstance(out, torch.Tensor) else sum(o.sum() for o in out)
    total.backward()
    grads = [x.grad if isinstance(x, torch.Tensor) and x.requires_grad else None for x in xs]
    return {"output": out, "grads": grads}


# ----------------------------------------------------------------------------- stand-ins
# One mistake, one deduction: while a check grades one function, the graded functions it calls
# are replaced by the grader's stand-ins (the grader sends their source: key ``"module.name"``
# -> the docstring's exact maths), so e.g. a missing KLD does not cost the checks of
# VAE.forward. A function that hung earlier in the run is replaced by a raiser wherever it has
# no stand-in, so it costs its own checks once and a bounded time.
#
# Every name bound to a replaced object in a module of the part folder (``from utils import *``
# in a trainer, ``import utils``, aliases) is swapped, and swapped back when the set changes.
# A stand-in refuses to run while it is not installed: student code that kept a reference to
# one cannot use it to answer its own function's checks.

class StandInUnavailable(RuntimeError):
    """A grader stand-in was called while it was not installed (student code kept it)."""


class FunctionHung(TimeoutError):
    """A graded function that did not return earlier in this run; it is not called again."""


_STANDIN_STATE: dict[str, Any] = {"active": set(), "calls": {}, "table": {}, "originals": {}, "signature": None}


def standin(key: str) -> Any:
    """Decorator for a stand-in function or class: it runs only while ``key`` is installed,
    and counts its calls (the report says which stand-ins a check used)."""
    import functools

    def decorate(obj: Any) -> Any:
        if isinstance(obj, type):
            init = obj.__init__

            @functools.wraps(init)
            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                _enter_standin(key)
                init(self, *args, **kwargs)

            obj.__init__ = __init__
            return obj

        @functools.wraps(obj)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _enter_standin(key)
            return obj(*args, **kwargs)

        return wrapper

    return decorate


def _enter_standin(key: str) -> None:
    if key not in _STANDIN_STATE["active"]:
        raise StandInUnavailable(f"the grader's stand-in for {key} is not available here (it replaces {key} only "
                                 "while other functions are graded)")
    _STANDIN_STATE["calls"][key] = _STANDIN_STATE["calls"].get(key, 0) + 1


def _hung_raiser(key: str, message: str) -> Any:
    def hung(*args: Any, **kwargs: Any) -> Any:
        raise FunctionHung(message)

    hung.__name__ = key.rsplit(".", 1)[-1]
    return hung


def _part_modules(part_dir: str) -> list[Any]:
    """Loaded modules whose file lies in the part folder (the student's and the instructor's files)."""
    import os
    import sys

    root = os.path.abspath(part_dir) + os.sep
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and os.path.abspath(path).startswith(root):
            found.append(module)
    return found


def _restore(part_dir: str) -> None:
    """Put the originals back wherever a stand-in or raiser is bound."""
    table, originals = _STANDIN_STATE["table"], _STANDIN_STATE["originals"]
    back = {id(rep): key for key, rep in table.items()}
    missing = object()
    for module in _part_modules(part_dir):
        for name, value in list(vars(module).items()):
            key = back.get(id(value))
            if key is None or table.get(key) is not value:
                continue
            original = originals.get(key, missing)
            if original is missing:
                module.__dict__.pop(name, None)
            else:
                setattr(module, name, original)
    _STANDIN_STATE["table"], _STANDIN_STATE["originals"] = {}, {}
    _STANDIN_STATE["active"] = set()


def _patch_definitions(module: Any) -> None:
    """Replace the graded objects ``module`` defines by their stand-ins (recording the originals)."""
    name = getattr(module, "__name__", "")
    for key, replacement in _STANDIN_STATE["table"].items():
        mod_name, _, attr = key.rpartition(".")
        if mod_name != name or vars(module).get(attr) is replacement:
            continue
        if attr in vars(module):
            _STANDIN_STATE["originals"][key] = vars(module)[attr]
        setattr(module, attr, replacement)


class _PatchAfterImport:
    """A ``sys.meta_path`` finder: a module with stand-ins that is first imported while they are
    installed gets them right after its code ran, before any importer binds its names. (Modules
    are never imported just to install stand-ins: a file that hangs or fails at import must
    cost only the checks that use it.)"""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        import sys

        if not any(k.rpartition(".")[0] == name for k in _STANDIN_STATE["table"]):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _patch_definitions(module)

        loader.exec_module = exec_module  # this spec's own loader instance
        return spec


def _install_import_hook() -> None:
    import sys

    if not any(isinstance(f, _PatchAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchAfterImport())


def use_standins(source: str | None, part_dir: str, hung: dict[str, str] | None = None) -> list[str]:
    """Install the stand-ins defined by ``source`` (a module's text, sent by the grader: the
    stand-ins are never on disk where the worker can read them) and raisers for the ``hung``
    keys (key -> message) that have no stand-in. Returns the keys replaced. Idempotent: the
    same request twice changes nothing."""
    import sys
    import types

    signature = (source, tuple(sorted((hung or {}).items())))
    if _STANDIN_STATE["signature"] == signature:
        return sorted(_STANDIN_STATE["table"])
    _restore(part_dir)
    _STANDIN_STATE["signature"] = None
    table: dict[str, Any] = {}
    if source:
        module = types.ModuleType("_ag_standins")
        exec(compile(source, "<grader stand-ins>", "exec"), module.__dict__)  # noqa: S102 - the grader's own code
        table.update(module.STANDINS)
    for key, message in (hung or {}).items():
        table.setdefault(key, _hung_raiser(key, message))
    _STANDIN_STATE.update(table=table, originals={}, active=set(table), calls={})
    _install_import_hook()
    for mod_name in {k.rpartition(".")[0] for k in table}:
        if mod_name in sys.modules:
            _patch_definitions(sys.modules[mod_name])
    # Other bindings of the originals (from utils import *, aliases); the originals stay
    # referenced in _STANDIN_STATE, so their ids cannot be reused meanwhile.
    swap = {id(o): table[k] for k, o in _STANDIN_STATE["originals"].items()}
    for mod in _part_modules(part_dir):
        for name, value in list(vars(mod).items()):
            if id(value) in swap:
                setattr(mod, name, swap[id(value)])
    _STANDIN_STATE["signature"] = signature
    return sorted(table)


def standin_calls() -> dict[str, int]:
    """How often each stand-in ran since it was installed (then the counts restart)."""
    calls = dict(_STANDIN_STATE["calls"])
    _STANDIN_STATE["calls"] = {}
    return calls


def check_report() -> dict[str, Any]:
    """What the grader notes after a check: the stand-ins it ran (counts restart) and the placeholders."""
    return {"standins": standin_calls(), "placeholders": placeholders()}


def placeholders() -> dict[str, str]:
    """Packages the student's files import that are not installed: name -> the file importing it."""
    import sys

    return {name: str(getattr(m, "__ag_importer__", "?")) for name, m in list(sys.modules.items())
            if getattr(m, "__ag_placeholder__", False) and "." not in name}
