"""Helpers the project's tests share: build submissions, grade them, read the results.

Submissions are graded through the real command line in a process of their own (``python -m
autograder grade``, forked from a warm interpreter: tests/warm_grader.py), so a test sees what a
student would see.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema

from tests.warm_grader import run_grader

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
STUDENT = ROOT / "student"
SCHEMA = json.loads((Path(__file__).parent / "gradescope_results.schema.json").read_text())


@dataclass(frozen=True)
class Edit:
    """Replace ``find`` (which must occur exactly once) by ``replace`` in ``part/file``."""

    part: str
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Mutant:
    """A realistic mistake in one graded function of the reference.

    ``function`` is the tag of the mutated function; ``mistake`` (optional) is a
    phrase that must appear in the output of a failing check tagged with it.
    """

    id: str
    function: str
    edits: tuple[Edit, ...]
    mistake: str | None = None


@dataclass(frozen=True)
class Variant:
    """A correct implementation that differs from the reference; it must get full marks."""

    id: str
    function: str
    edits: tuple[Edit, ...]


def table_makers(part: str) -> tuple[Any, Any, Any]:
    """The mutant tables' shorthands for one part folder: ``e(file, find, replace)`` an Edit,
    ``m(id, function, file, find, replace, mistake)`` a one-edit Mutant, ``v(id, function, *edits)``
    a Variant."""
    def e(file: str, find: str, replace: str) -> Edit:
        return Edit(part, file, find, replace)

    def m(id: str, function: str, file: str, find: str, replace: str, mistake: str | None = None) -> Mutant:
        return Mutant(id, function, (e(file, find, replace),), mistake)

    def v(id: str, function: str, *edits: Edit) -> Variant:
        return Variant(id, function, tuple(edits))

    return e, m, v


def _calls(edition: str | None = None) -> set[tuple[str, str]]:
    """(caller, callee) function ids of ``[parts.N.depends]``, aliases expanded both ways."""
    from autograder import config

    cfg = config.load(edition=edition)
    pairs = set()
    for part, spec in cfg.parts.items():
        def ids(key: str) -> set[str]:
            module, _, rest = key.partition(".")
            names = {module, *spec.aliases.get(module, ())}
            names |= {alias for alias, files in spec.aliases.items() if module in files}
            return {f"{part}.{name}.{rest}" for name in names}

        for caller, callees in spec.depends.items():
            for callee in callees:
                pairs |= {(a, b) for a in ids(caller) for b in ids(callee)}
    return pairs


def independent_groups(items: Iterable[Any], base: Path = SOLUTIONS, edition: str | None = None) -> list[list[Any]]:
    """Pack mutants (or variants) into groups that one grade can judge together: one item per
    graded function, edits that apply together, and for mutants no two functions where one
    calls the other (``depends``: a bug leaking from the callee into the caller's checks would
    hide behind the caller's own bug; a variant's leak would still cost points, so variants
    skip this rule). One mistake, one deduction makes each function's verdict its own, so a
    group costs one grade instead of one per item (issue 16: the suite's time)."""
    items = list(items)
    calls = _calls(edition) if any(isinstance(i, Mutant) for i in items) else set()
    groups: list[tuple[list[Any], dict[tuple[str, str], str]]] = []

    def fits(item: Any, group: list[Any], texts: dict[tuple[str, str], str]) -> dict[tuple[str, str], str] | None:
        for other in group:
            a, b = item.function, other.function
            if a == b or (a, b) in calls or (b, a) in calls:
                return None
        texts = dict(texts)
        for e in item.edits:
            key = (e.part, e.file)
            if key not in texts:
                texts[key] = (base / e.part / e.file).read_text(encoding="utf-8")
            if texts[key].count(e.find) != 1:
                return None
            texts[key] = texts[key].replace(e.find, e.replace)
        return texts

    for item in items:
        for group, texts in groups:
            new = fits(item, group, texts)
            if new is not None:
                group.append(item)
                texts.clear()
                texts.update(new)
                break
        else:
            new = fits(item, [], {})
            assert new is not None, f"{item.id}: its edits do not apply to {base}"
            groups.append(([item], new))
    return [g for g, _ in groups]


def group_id(group: list[Any]) -> str:
    return "+".join(item.id for item in group)


def made_once(factory: Any, name: str, make: Callable[[Path], None]) -> Path:
    """A folder that ``make(folder)`` fills once per test run, shared by every test process
    (pytest-xdist runs a module-scoped fixture once per process: a fixture that grades would
    grade on every core). ``factory``: pytest's ``tmp_path_factory``."""
    import fcntl

    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each process's own
    folder = root / f"once-{name}"
    with open(root / f"once-{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait for the first one's folder
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


def make_submission(dest: Path, edits: Iterable[Edit] = (), base: Path = SOLUTIONS,
                    parts: Iterable[str] = ("part1", "part2", "part3")) -> Path:
    """Copy the graded parts of ``base`` to ``dest`` and apply ``edits``."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        shutil.copytree(base / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    for e in edits:
        path = dest / e.part / e.file
        text = path.read_text(encoding="utf-8")
        count = text.count(e.find)
        if count != 1:
            raise AssertionError(f"edit for {e.part}/{e.file}: text to replace occurs {count} times: {e.find!r}")
        path.write_text(text.replace(e.find, e.replace), encoding="utf-8")
    return dest


def grade(submission: Path, results: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None,
          config: Path | None = None) -> dict[str, Any]:
    """Run ``python -m autograder grade`` (forked from the warm grader: tests/warm_grader.py) and
    return the validated results."""
    argv = ["grade", str(submission), "--results", str(results), "--quiet", *args]
    if config:
        argv += ["--config", str(config)]
    proc = run_grader(argv, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)
    assert proc.returncode == 0, f"grader exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(results.read_text())
    validate(data)
    return data


def config_copy(dest: Path, checks: dict[str, dict[str, Any]] | None = None) -> Path:
    """grading.toml copied into folder ``dest`` with its paths made absolute (it loads from
    anywhere) and, per check id, keys set in its table: ``{"part1.utils.KLD.prior": {"budget_s": 5}}``."""
    import re
    import tomllib

    text = (ROOT / "grading.toml").read_text(encoding="utf-8")
    for key, rel in (("handout", "student"), ("reference", "solutions"), ("checks", "autograder/checks")):
        text = re.sub(rf'^{key} = "[^"]*"', f'{key} = "{ROOT / rel}"', text, count=1, flags=re.M)
    for cid, values in (checks or {}).items():
        header = f'[checks."{cid}"]\n'
        start = text.index(header) + len(header)
        end = text.find("\n[", start) + 1 or len(text)
        table = text[start:end]
        for key, value in values.items():
            line = f"{key} = {json.dumps(value)}"
            table, found = re.subn(rf"^{key} = .*$", line, table, count=1, flags=re.M)
            table = table if found else line + "\n" + table
        text = text[:start] + table + text[end:]
    tomllib.loads(text)  # still valid
    path = dest / "grading.toml"
    dest.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def validate(results: dict[str, Any]) -> None:
    """Gradescope's schema, plus what a schema cannot say (score within bounds)."""
    jsonschema.validate(results, SCHEMA)
    for t in results["tests"]:
        assert 0 <= t["score"] <= t["max_score"] + 1e-9, f"{t['number']}: score {t['score']} outside [0, {t['max_score']}]"
    assert abs(results.get("score", 0) - sum(t["score"] for t in results["tests"])) < 1e-6


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["extra_data"]["check_id"]: t for t in results["tests"]}


def lost(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in results["tests"] if t["score"] < t["max_score"] - 1e-9]


def explain(tests: Iterable[dict[str, Any]]) -> str:
    return "\n".join(f"  {t['number']} {t['name']}: {t['output'][:400]}" for t in tests)


def grades(test: dict[str, Any]) -> str:
    """The function a results entry grades (``extra_data.grades``)."""
    return str(test.get("extra_data", {}).get("grades", ""))


def assert_mutants_caught(results: dict[str, Any], mutants: Iterable[Mutant]) -> None:
    """Graded together (:func:`independent_groups`): each mutant loses points on a check of its
    own function and names its mistake there; no other function loses anything."""
    mutants = list(mutants)
    failing = lost(results)
    functions = {m.function for m in mutants}
    for mutant in mutants:
        mine = [t for t in failing if grades(t) == mutant.function]
        assert mine, f"{mutant.id}: no check grading {mutant.function} lost points"
        if mutant.mistake:
            assert any(mutant.mistake.lower() in t["output"].lower() for t in mine), (
                f"{mutant.id}: no failing check named the mistake {mutant.mistake!r}:\n{explain(mine)}")
    collateral = [t for t in failing if grades(t) not in functions]
    assert not collateral, f"{group_id(mutants)}: checks of other functions lost points:\n{explain(collateral)}"


def assert_full_marks(results: dict[str, Any], what: str) -> None:
    failing = lost(results)
    assert not failing, f"{what}: lost points on\n{explain(failing)}"
    assert results["tests"], f"{what}: no checks were graded"


def assert_handout_zero(results: dict[str, Any], check_ids: Iterable[str],
                        phrases: tuple[str, ...] = ("not implemented yet",)) -> None:
    """Every check in ``check_ids`` scored 0 on the untouched handout with one clear line
    (containing one of ``phrases``) and no grader error."""
    got = by_id(results)
    for cid in check_ids:
        assert cid in got, f"{cid} was not graded"
        t = got[cid]
        assert t["score"] == 0, f"{cid}: the handout scored {t['score']}"
        text = t["output"].strip()
        assert any(p in text for p in phrases), f"{cid}: {text[:300]}"
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("Rerun this check alone")), (
            f"{cid}: more than one line:\n{text}")
        assert "internal error" not in text and "not your fault" not in text, f"{cid}: {text}"


# ---------------------------------------------------------------------------- graded functions
@functools.lru_cache(maxsize=None)
def declared_checks(checks_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """check id -> {"file", "tags", "grades"} for every @check in a checks folder (the modules
    are trusted code: the grader imports them too). Read once per folder and test process (~2 s:
    several test modules ask at collection); callers only read the result."""
    import importlib.util

    from autograder import registry

    checks_dir = checks_dir or ROOT / "autograder" / "checks"
    found: dict[str, dict[str, Any]] = {}
    sys.path.insert(0, str(checks_dir.parent))
    try:
        for path in sorted(checks_dir.rglob("test_*.py")):
            name = f"_declared_{checks_dir.name}_{path.parent.name}_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up while being defined
            spec.loader.exec_module(module)
            for obj in vars(module).values():
                cid = registry.check_id_of(obj) if callable(obj) else None
                if cid and getattr(obj, "__module__", None) == name:
                    assert cid not in found, f"check id {cid} declared twice ({found[cid]['file']} and {path.name})"
                    found[cid] = {"file": path.name, "tags": registry.tags_of(obj), "grades": registry.grades_of(obj)}
    finally:
        sys.path.remove(str(checks_dir.parent))
    return found


def function_files(function_id: str) -> tuple[str, list[str], str]:
    """``part1.train.VAE.forward`` -> ("part1", ["train_torch.py", "train_pl.py"], "VAE.forward")."""
    from autograder import config

    part, module, qualname = function_id.split(".", 2)
    spec = config.load().parts[part]
    modules = spec.aliases.get(module, (module,))
    return part, [f"{m}.py" for m in modules], qualname


def _belongs(qualname: str, wanted: str) -> bool:
    return qualname == wanted or qualname.startswith(wanted + ".")


def submission_with(dest: Path, stubbed: Iterable[str] = (), written: Iterable[str] | None = None) -> Path:
    """The reference with the functions ``stubbed`` reverted to the handout's stub, or (``written``
    given) the handout with only the functions ``written`` taken from the reference."""
    from autograder import config

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_handout
    finally:
        sys.path.pop(0)
    stubbed, keep = list(stubbed), None if written is None else list(written)
    make_submission(dest)
    for part, spec in config.load().parts.items():
        for fname in spec.graded_files:
            def here(fid: str) -> bool:
                p, files, _ = function_files(fid)
                return p == part and fname in files

            stub_q = [function_files(f)[2] for f in stubbed if here(f)]
            keep_q = [function_files(f)[2] for f in keep or [] if here(f)]
            if keep is None and not stub_q:
                continue
            if keep is None:
                def rule(q: str) -> bool:
                    return any(_belongs(q, x) for x in stub_q)
            else:
                def rule(q: str) -> bool:
                    return not any(_belongs(q, x) for x in keep_q)
            source = (SOLUTIONS / part / fname).read_text(encoding="utf-8")
            (dest / part / fname).write_text(make_handout.strip_solutions(source, f"{part}/{fname}", stub=rule),
                                             encoding="utf-8")
    return dest


MUTATE_HELPER = '''

def _ag_mutated(value, how):
    """Test mutation (tests/support.py): NaN values, or a wrong shape (two stacked copies)."""
    import torch
    if isinstance(value, torch.Tensor):
        if how == "shape":
            return torch.stack([value, value])
        return torch.full_like(value, float("nan")) if value.is_floating_point() else torch.full_like(value, -1)
    if isinstance(value, torch.nn.Module):
        if how == "nan":
            with torch.no_grad():
                for p in value.parameters():
                    p.fill_(float("nan"))
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_ag_mutated(v, how) for v in value)
    if isinstance(value, float):
        return float("nan") if how == "nan" else [value, value]
    return value
'''


def mutate_output(dest: Path, function_id: str, how: str) -> Path:
    """Make ``function_id`` of the submission in ``dest`` return NaN (``how="nan"``; a returned model
    gets NaN weights) or a wrong shape (``"shape"``: two stacked copies): a wrapper appended to its file(s).
    Several functions of one file can be mutated (each wrapper has its own names)."""
    part, files, qualname = function_files(function_id)
    owner, _, method = qualname.rpartition(".")
    safe = qualname.replace(".", "_")
    for fname in files:
        path = dest / part / fname
        text = path.read_text(encoding="utf-8")
        if "def _ag_mutated(" not in text:
            text += MUTATE_HELPER
        if owner or f"class {qualname}(" in text or f"class {qualname}:" in text:  # a method, or a class's forward
            target = qualname if owner else f"{qualname}.forward"
            text += (f"\n_ag_inner_{safe} = {target}\n\n"
                     f"def _ag_wrapper_{safe}(*args, **kwargs):\n"
                     f"    return _ag_mutated(_ag_inner_{safe}(*args, **kwargs), {how!r})\n\n"
                     f"{target} = _ag_wrapper_{safe}\n")
        else:
            text += (f"\n_ag_inner_{safe} = {qualname}\n\n"
                     f"def {qualname}(*args, **kwargs):\n"
                     f"    return _ag_mutated(_ag_inner_{safe}(*args, **kwargs), {how!r})\n")
        path.write_text(text, encoding="utf-8")
    return dest


def stub_functions(path: Path, names: Iterable[str]) -> None:
    """Rewrite ``path`` with each named function (``VAE.forward``) as a course template hands it
    out: its docstring, ``result = None``, a bare ``raise NotImplementedError`` and the
    ``return result`` it never reaches. (Comments are lost: the file is unparsed.)"""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted, done = set(names), set()

    def visit(body: list, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.FunctionDef) and prefix + node.name in wanted:
                doc = [node.body[0]] if (node.body and isinstance(node.body[0], ast.Expr)
                                          and isinstance(getattr(node.body[0], "value", None), ast.Constant)) else []
                node.body = doc + ast.parse("result = None\nraise NotImplementedError\nreturn result\n").body
                done.add(prefix + node.name)

    visit(tree.body, "")
    assert done == wanted, f"not found in {path}: {sorted(wanted - done)}"
    path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n", encoding="utf-8")
