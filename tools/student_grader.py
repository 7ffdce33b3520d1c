"""The student edition of the grader: the visible checks, runnable inside the handout.

``build(handout)`` adds to a generated handout folder (``tools/make_handout.py --grader``):

- ``autograder/``: the engine and the check modules of the parts the handout grades, without
  the functions of checks that are not ``visible`` (their code, numbers and inputs stay here)
  and without the stand-ins that are the grader's own solutions of graded functions (only those
  of ``[parts.N] standins_public``, e.g. an MLP in place of the CNN encoder, ship): a check runs
  with the student's own versions of the other functions its function calls, and says so when
  one of them lost points (Gradescope charges such a mistake to its own checks only);
- ``autograder/recorded.pt``: every value a visible check takes from a graded function of the
  reference, recorded by grading ``solutions/`` (the checks' inputs are deterministic), so no
  solution source leaves this copy (``autograder.checks.reference``: record and replay);
- ``autograder/handout/``: the handout's part folders as generated (the files that are not
  taken from a submission, and what "still the handout's version" compares with; its graded
  functions raise, so it is no reference);
- ``grading.toml``: this one with that copy as handout and reference module source, the
  recording (``recorded``), the visible checks only, and no editions;
- ``requirements.txt``: what the grader needs.

Inside the handout, ``python -m autograder grade .`` then prints the visible checks' scores, the
same as Gradescope's for them, and says how many points are hidden.
"""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import config as config_mod  # noqa: E402
from autograder.prepare import REFERENCE_FIGURES  # noqa: E402
from autograder.standins import StandIns  # noqa: E402

# What of autograder/ ships besides its top-level modules (relative paths; checks are added per part).
ENGINE_EXTRA = ["sandbox", "checks/conftest.py", "checks/reference.py", "checks/probing.py"]
GENERATED = ("autograder", "grading.toml", "requirements.txt")  # what build() adds to the handout


def _public_standins(config_path: Path, part: str) -> list[str]:
    """``[parts.N] standins_public``: stand-ins that reveal no solution (another architecture)."""
    raw = config_mod.tomllib.loads(config_path.read_text(encoding="utf-8"))
    return list(raw.get("parts", {}).get(part, {}).get("standins_public", []))


def visible_checks(cfg: config_mod.Config) -> list[str]:
    return [cid for cid, spec in cfg.checks.items()
            if spec.visibility == "visible" and cid.split(".", 1)[0] in cfg.parts]


def strip_checks(source: str, drop: set[str]) -> str:
    """``source`` without the functions decorated ``@check(ID)`` for an ID in ``drop``."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    cut: list[tuple[int, int]] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        ids = [d.args[0].value for d in node.decorator_list
               if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "check" and d.args
               and isinstance(d.args[0], ast.Constant)]
        if set(ids) & drop:
            start = min(d.lineno for d in node.decorator_list) - 1
            cut.append((start, node.end_lineno or start))
    for start, end in sorted(cut, reverse=True):
        del lines[start:end]
    return "".join(lines)


def student_config(text: str, cfg: config_mod.Config, recorded: str, hidden_points: float,
                   public: dict[str, list[str]]) -> str:
    """grading.toml for the student edition: the [assignment] table pointed at the handout and the
    recording, [checks."ID"] tables of the checks that do not ship removed, no [editions.*]."""
    keep = set(visible_checks(cfg))
    out: list[str] = []
    section = ""
    for line in text.splitlines(keepends=True):
        header = re.match(r"^\[([^\[\]]+)\]\s*(#.*)?$", line.strip())
        if header:
            section = header.group(1).strip()
        if section.startswith("editions."):
            continue
        check = re.match(r'^checks\."([^"]+)"$', section)
        if check and check.group(1) not in keep:
            continue
        if section == "assignment":
            key = line.split("=", 1)[0].strip()
            if key in ("handout", "reference", "checks", "protected"):
                line = {"handout": 'handout = "autograder/handout"\n', "reference": 'reference = "autograder/handout"\n',
                        "checks": 'checks = "autograder/checks"\n', "protected": "protected = []\n"}[key]
            elif header:
                line += f'recorded = "{recorded}"  # the reference values of the visible checks (no solution ships)\n'
        if section.startswith("parts.") and line.split("=", 1)[0].strip() == "standins" and not public.get(section[6:]):
            line = 'standins = ""  # not shipped: a check runs with the student\'s own versions of what it calls\n'
        if section == "grader" and header:
            line += f"hidden_points = {hidden_points:g}  # graded on Gradescope by checks that do not ship\n"
        out.append(line)
    return "".join(out)


def build(handout: Path, config_path: Path = config_mod.DEFAULT_CONFIG, python: str = sys.executable,
          record: bool = True, results: Path | None = None) -> dict[str, float]:
    """Add the student edition of the grader to ``handout``; returns the visible and hidden points.
    ``record=False`` skips grading the reference (what :func:`stale` compares needs no recording);
    ``results``: keep that grade's results there (the instructor's scores of the visible checks)."""
    cfg = config_mod.load(config_path)
    visible = visible_checks(cfg)
    hidden = {cid for cid in cfg.checks if cid not in visible}
    hidden_points = sum(cfg.checks[c].weight for c in hidden if c.split(".", 1)[0] in cfg.parts
                        and cfg.selected(cfg.checks[c]))
    points = {"visible": sum(cfg.checks[c].weight for c in visible if cfg.selected(cfg.checks[c])),
              "hidden": hidden_points}
    public = {part: _public_standins(config_path, part) for part in cfg.parts}
    for name in GENERATED:
        target = handout / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    dest = handout / "autograder"
    engine = sorted(p.name for p in (ROOT / "autograder").glob("*.py")) + ENGINE_EXTRA
    for rel in engine:
        src = ROOT / "autograder" / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / rel)
    for part in cfg.parts:
        for src in sorted((cfg.checks_dir / part).rglob("*")):
            if "__pycache__" in src.parts or src.is_dir():
                continue
            if src.stem == cfg.parts[part].standins:  # only the stand-ins that are no solution ship
                if public[part]:
                    target = dest / "checks" / part / src.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(StandIns(part, src, cfg.parts[part].depends).source_for(public[part]),
                                      encoding="utf-8")
                continue
            target = dest / "checks" / part / src.relative_to(cfg.checks_dir / part)
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.name.startswith("test_") and src.suffix == ".py":
                target.write_text(strip_checks(src.read_text(encoding="utf-8"), hidden), encoding="utf-8")
            else:
                shutil.copyfile(src, target)
    for part in cfg.parts:  # the pristine handout: non-graded files, and what "untouched" compares with
        shutil.copytree(handout / part, dest / "handout" / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "data", "runs", "lightning_logs"))
    if REFERENCE_FIGURES.exists():  # made by `autograder prepare`: a reference model's pictures, no solution code
        target = dest / REFERENCE_FIGURES.relative_to(ROOT / "autograder")
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(REFERENCE_FIGURES, target)
    shutil.copyfile(ROOT / "requirements.txt", handout / "requirements.txt")
    (handout / "grading.toml").write_text(
        student_config(config_path.read_text(encoding="utf-8"), cfg, "autograder/recorded.pt", hidden_points, public),
        encoding="utf-8")
    if not record:
        return points
    with tempfile.TemporaryDirectory() as tmp:
        only = [a for cid in visible for a in ("--only", cid)]
        proc = subprocess.run([python, "-m", "autograder", "grade", str(cfg.reference_dir), "--config", str(config_path),
                               "--results", str(results or Path(tmp) / "r.json"), "--quiet",
                               "--record", str(dest / "recorded.pt"), *only], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not (dest / "recorded.pt").exists():
            raise RuntimeError(f"recording the reference failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return points


def stale(handout: Path, config_path: Path = config_mod.DEFAULT_CONFIG) -> list[str]:
    """Files of ``handout``'s student grader that differ from what :func:`build` makes now (the
    engine, the checks, the config; the recording is remade by every build). Empty when the
    handout has no student grader."""
    if not (handout / "autograder").is_dir():
        return []
    def tree(root: Path) -> dict[str, bytes]:
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "autograder").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.name != "recorded.pt"
                 and ".cache" not in p.parts}
        files["grading.toml"] = (root / "grading.toml").read_bytes() if (root / "grading.toml").exists() else b""
        return files

    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "handout"
        shutil.copytree(handout, fresh, ignore=shutil.ignore_patterns(*GENERATED, "__pycache__", "results.json",
                                                                       "report.html"))
        build(fresh, config_path, record=False)
        want, have = tree(fresh), tree(handout)
    return sorted({p for p in set(want) | set(have) if want.get(p) != have.get(p)})
