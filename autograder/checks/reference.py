"""The reference solution, imported into the trusted grading process only.

Each part's files import their siblings flatly (``from utils import *``), and two
parts both have a ``utils``; so a part is imported with its folder first on
``sys.path`` and its modules are then renamed ``_reference_part1_utils`` etc., leaving
``sys.modules`` as it was for the next part.
"""
from __future__ import annotations

import hashlib
import importlib
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any


@lru_cache(maxsize=None)
def load(reference_dir: Path, part: str, module: str) -> ModuleType:
    """Import ``reference_dir/part/module.py`` (and the siblings it imports) under private names."""
    folder = str(reference_dir / part)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        mod = importlib.import_module(module)
    finally:
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            loaded = sys.modules[name]
            if str(getattr(loaded, "__file__", "") or "").startswith(folder):
                sys.modules[f"_reference_{part}_{name}"] = sys.modules.pop(name)
    return mod


def drop_caches(module: ModuleType) -> None:
    """Empty every ``functools`` cache of a reference module (the data modules keep whole
    official splits, ~50 MB each, in theirs; copies already handed out stay valid)."""
    for value in vars(module).values():
        if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
            value.cache_clear()


def setup_parts(cfg: object) -> None:
    """Run each part's setup driver (``[parts.N] setup``) in this process with the part's
    conventions, as every worker does first: the grader then computes in the same conventions."""
    for part in cfg.parts.values():  # type: ignore[attr-defined]
        if part.setup:
            module, function = part.setup.rsplit(".", 1)
            driver = importlib.import_module(f"autograder.checks.{part.name}.{module}")
            getattr(driver, function)(cfg.conventions.get(part.name, {}))  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- recorded expectations
# The student edition of the grader (tools/make_handout.py --grader) ships no solution: every
# value a visible check takes from a graded function of the reference is recorded once, by
# grading the reference (the checks' inputs are deterministic), and looked up by the same check
# on the student's machine. Modules that are not graded (data, models, given helpers) are the
# handout's own files on both sides.

class NotRecorded(RuntimeError):
    """A reference value the recording does not have (an input the reference's grade never made)."""


def _canonical(value: Any, h: "hashlib._Hash") -> None:
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, (list, tuple)):
        h.update(f"L{type(value).__name__}{len(value)}".encode())
        for v in value:
            _canonical(v, h)
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for k in sorted(value, key=repr):
            _canonical(k, h)
            _canonical(value[k], h)
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(f"V{type(value).__name__}{value!r}".encode())
    else:
        raise NotRecorded(f"cannot record an argument of type {type(value).__name__}")


def call_key(name: str, args: tuple, kwargs: dict) -> str:
    """Hash of a call: the function's id and every argument's type, shape and exact bytes."""
    h = hashlib.sha256(name.encode())
    _canonical(list(args), h)
    _canonical(kwargs, h)
    return h.hexdigest()


def _fresh(value: Any) -> Any:
    """A copy of a recorded value (tensors cloned, containers rebuilt)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v) for v in value) if not hasattr(value, "_fields") else type(value)(*map(_fresh, value))
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value


class Recording:
    """Function id (``part1.utils.KLD``) -> call key -> the reference's result."""

    def __init__(self, calls: dict[str, dict[str, Any]] | None = None) -> None:
        self.calls: dict[str, dict[str, Any]] = calls or {}

    def save(self, path: Path) -> None:
        import torch

        torch.save(self.calls, path)

    @classmethod
    def open(cls, path: Path) -> "Recording":
        import torch

        return cls(torch.load(path, weights_only=True))  # tensors and containers only


class _Recorded:
    """A reference module seen through a recording: graded functions' calls are recorded (on the
    instructor's side, ``real`` is the reference) or looked up (student side, ``real`` is the
    handout's module); every other attribute is ``real``'s."""

    def __init__(self, real: ModuleType, prefix: str, graded: bool, recording: Recording, replay: bool) -> None:
        self._real, self._prefix, self._graded, self._recording, self._replay = real, prefix, graded, recording, replay

    def __getattr__(self, name: str) -> Any:
        fid = f"{self._prefix}.{name}"
        if not self._graded or (not self._replay and not callable(getattr(self._real, name, None))):
            return getattr(self._real, name)
        if self._replay:
            if fid not in self._recording.calls:
                return getattr(self._real, name)
            table = self._recording.calls[fid]

            def lookup(*args: Any, **kwargs: Any) -> Any:
                key = call_key(fid, args, kwargs)
                if key not in table:
                    raise NotRecorded(f"the reference value of {name} for this input was not recorded; this check "
                                      "can only be graded by the course's own grader")
                return _fresh(table[key])  # a check may change what it got; the next lookup must not see it
            return lookup
        function = getattr(self._real, name)

        def record(*args: Any, **kwargs: Any) -> Any:
            out = function(*args, **kwargs)
            self._recording.calls.setdefault(fid, {})[call_key(fid, args, kwargs)] = out
            return out
        return record


_MODE: dict[str, Any] = {}  # {"recording": Recording, "replay": bool, "graded": {part: {module stems}}}


def use_recording(recording: Recording | None, replay: bool = False,
                  graded: dict[str, set[str]] | None = None) -> None:
    """Record the checks' calls into ``recording`` (instructor side) or replay them from it
    (``replay``: the student edition); None: the plain reference."""
    _MODE.clear()
    if recording is not None:
        _MODE.update(recording=recording, replay=replay, graded=graded or {})


def module(reference_dir: Path, part: str, name: str) -> Any:
    """What a check's ``refN(name)`` returns: the reference module, through the recording if one is in use."""
    real = load(reference_dir, part, name)
    if not _MODE:
        return real
    graded = name in _MODE["graded"].get(part, set())
    return _Recorded(real, f"{part}.{name}", graded, _MODE["recording"], _MODE["replay"])
