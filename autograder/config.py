"""The instructor's one configuration file (``grading.toml``), loaded and validated.

Everything an instructor tunes lives there: questions, the points, number and
visibility of every check, thresholds, time budgets and profiles. Check code
reads it through :func:`load` and never repeats a number that is configured.
"""
from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Gradescope's Ubuntu 22.04 has Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "grading.toml"
VISIBILITIES = {"visible", "hidden", "after_due_date", "after_published"}


class ConfigError(ValueError):
    """The configuration file is malformed; the message names the key."""


@dataclass(frozen=True)
class CheckSpec:
    """One graded check as configured: how it is numbered, named, weighted and shown."""

    id: str
    number: str
    name: str
    weight: float
    visibility: str = "visible"
    budget_s: float | None = None
    question: str = ""


@dataclass(frozen=True)
class PartSpec:
    """A folder of the assignment (``part1``) and the files taken from a submission."""

    name: str
    graded_files: tuple[str, ...]
    # For flat uploads: a graded file whose name exists in several parts is
    # assigned to the part whose marker names it defines.
    markers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The grader's stand-ins (a module in the part's checks folder; '' = none): while a check
    # grades a function, the graded functions it calls (``depends``) are these.
    standins: str = ""
    # One function id for a definition that may live in one of several files:
    # {"train": ("train_torch", "train_pl")} makes part1.train.VAE.forward either file's VAE.forward.
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Graded function -> the graded functions it calls ("train.VAE.forward" -> ("utils.KLD", ...)):
    # they get stand-ins while it is graded, and their own checks run first.
    depends: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # A driver ("drivers_part2.configure") run with the part's conventions in the grading process
    # and once in each new worker, before anything else: both compute in the same conventions.
    setup: str = ""
    # Other names a course's handout gives a graded file ({"estimators.py": ("q1_solution.py",)}):
    # discovery takes such a file and grades it under the graded name.
    file_names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def file_names_taken(self) -> set[str]:
        """Every file name discovery takes for this part: the graded names and their other names."""
        return set(self.graded_files) | {o for g, others in self.file_names.items() if g in self.graded_files
                                         for o in others}

    def graded_name(self, filename: str) -> str | None:
        """The graded file ``filename`` is (itself, or one whose other name it is), or None."""
        if filename in self.graded_files:
            return filename
        return next((g for g, others in self.file_names.items() if filename in others and g in self.graded_files), None)


@dataclass(frozen=True)
class Config:
    """The whole grading configuration; see ``grading.toml`` for the meaning of each key."""

    path: Path
    title: str
    handout_dir: Path
    reference_dir: Path
    checks_dir: Path
    protected: tuple[Path, ...]
    parts: dict[str, PartSpec]
    checks: dict[str, CheckSpec]
    questions: dict[str, str]
    grader: dict[str, Any]
    worker: dict[str, Any]
    thresholds: dict[str, Any]
    profiles: dict[str, dict[str, Any]]
    profile: str
    # The course edition graded ('' = this project's own handout) and the conventions its
    # checks read (input layout, forbidden-API policy and its exceptions, ...).
    edition: str = ""
    editions: tuple[str, ...] = ()
    conventions: dict[str, Any] = field(default_factory=dict)
    # Parts the file defines but this edition leaves out (graded_files = []): their checks are
    # never selected, whatever the profile says.
    dropped_parts: tuple[str, ...] = ()
    # How tools/make_handout.py --edition lays the handout out: "folders" (one per part) or "flat".
    handout_layout: str = "folders"
    # The student edition of the grader: the reference values its checks use, recorded on the
    # instructor's side ([assignment] recorded); None: the reference solution itself.
    recorded: Path | None = None

    def convention(self, key: str, default: Any = None) -> Any:
        """A dotted convention such as ``part1.forbidden_api_allow`` (``default`` when unset)."""
        node: Any = self.conventions
        for piece in key.split("."):
            if not isinstance(node, dict) or piece not in node:
                return default
            node = node[piece]
        return node

    def threshold(self, key: str) -> Any:
        """A dotted threshold such as ``part1.smoke.max_test_bpd``."""
        node: Any = self.thresholds
        for piece in key.split("."):
            if not isinstance(node, dict) or piece not in node:
                raise ConfigError(f"{self.path.name}: no threshold [thresholds.{key}]")
            node = node[piece]
        return node

    def selected(self, spec: CheckSpec, tags: tuple[str, ...] = ()) -> bool:
        """Whether the active profile grades this check (never one of a part this edition drops)."""
        if spec.id.split(".", 1)[0] in self.dropped_parts:
            return False
        prof = self.profiles[self.profile]
        include = prof.get("include", ["*"])
        exclude = prof.get("exclude", [])
        keys = (spec.id, spec.number, *tags)
        hit = lambda pats: any(fnmatch.fnmatchcase(k, p) for p in pats for k in keys)  # noqa: E731
        return hit(include) and not hit(exclude)


def _require(table: dict, key: str, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"missing key '{key}' in [{where}]")
    return table[key]


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` merged in: tables merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load(path: Path | str | None = None, profile: str | None = None, edition: str | None = None) -> Config:
    """Read and validate a configuration file (default: the repository's ``grading.toml``).

    ``edition`` (default: ``[grader] edition``, else none) overlays ``[editions.NAME]`` on the
    file (after the edition it ``extends``, if any): an edition changes data (handout, graded files, conventions, thresholds, weights),
    never check code.
    """
    path = Path(path or DEFAULT_CONFIG).resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    editions = raw.pop("editions", {}) or {}
    chosen_edition = edition if edition is not None else str(raw.get("grader", {}).get("edition", ""))
    if chosen_edition and chosen_edition != "default":
        if chosen_edition not in editions:
            raise ConfigError(f"unknown edition {chosen_edition!r}; the config defines "
                              f"{sorted(editions) or 'none'} (and 'default', this project's own handout)")
        chain, name = [], chosen_edition
        while name:  # an edition may extend another: the base, then each parent, then itself
            if name in chain or name not in editions:
                raise ConfigError(f"edition {chain[-1]!r} extends {name!r}, which is "
                                  + ("a cycle" if name in chain else "not defined"))
            chain.append(name)
            name = str(editions[name].get("extends", ""))
        for name in reversed(chain):
            raw = _overlay(raw, {k: v for k, v in editions[name].items() if k != "extends"})
    else:
        chosen_edition = ""
    base = path.parent
    assignment = _require(raw, "assignment", "")
    parts = {}
    dropped = []
    for name, table in _require(raw, "parts", "").items():
        if not _require(table, "graded_files", f"parts.{name}"):
            dropped.append(name)  # an edition without this part (graded_files = [])
            continue
        markers = {k: tuple(v) for k, v in table.get("markers", {}).items()}
        aliases = {str(k): tuple(v) for k, v in table.get("aliases", {}).items()}
        depends = {str(k): tuple(v) for k, v in table.get("depends", {}).items()}
        parts[name] = PartSpec(name, tuple(_require(table, "graded_files", f"parts.{name}")), markers,
                               str(table.get("standins", "")), aliases, depends, str(table.get("setup", "")),
                               {str(k): tuple(v) for k, v in table.get("file_names", {}).items()})
    questions = {str(k): str(v.get("title", "")) for k, v in raw.get("questions", {}).items()}
    checks = {}
    for cid, table in raw.get("checks", {}).items():
        where = f'checks."{cid}"'
        vis = table.get("visibility", "visible")
        if vis not in VISIBILITIES:
            raise ConfigError(f"[{where}] visibility must be one of {sorted(VISIBILITIES)}, not {vis!r}")
        weight = float(_require(table, "weight", where))
        if weight < 0:
            raise ConfigError(f"[{where}] weight must be >= 0")
        number = str(_require(table, "number", where))
        checks[cid] = CheckSpec(
            id=cid,
            number=number,
            name=str(_require(table, "name", where)),
            weight=weight,
            visibility=vis,
            budget_s=table.get("budget_s"),
            question=str(table.get("question", number.rsplit(".", 1)[0])),
        )
    # Numbers are unique among the checks this edition can grade (a dropped part's may repeat them).
    numbers = [c.number for c in checks.values() if c.id.split(".", 1)[0] not in dropped]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path.name}: check numbers used twice: {', '.join(dupes)}")
    profiles = raw.get("profiles", {}) or {"full": {"include": ["*"]}}
    grader = raw.get("grader", {})
    chosen = profile or grader.get("profile", next(iter(profiles)))
    if chosen not in profiles:
        raise ConfigError(f"unknown profile {chosen!r}; the config defines {sorted(profiles)}")
    return Config(
        path=path,
        title=str(assignment.get("title", "")),
        handout_dir=(base / _require(assignment, "handout", "assignment")).resolve(),
        reference_dir=(base / _require(assignment, "reference", "assignment")).resolve(),
        checks_dir=(base / _require(assignment, "checks", "assignment")).resolve(),
        protected=tuple((base / p).resolve() for p in assignment.get("protected", [])),
        parts=parts,
        checks=checks,
        questions=questions,
        grader=grader,
        worker=raw.get("worker", {}),
        thresholds=raw.get("thresholds", {}),
        profiles=profiles,
        profile=chosen,
        edition=chosen_edition,
        editions=tuple(sorted(editions)),
        conventions=raw.get("conventions", {}),
        dropped_parts=tuple(dropped),
        handout_layout=str(raw.get("handout", {}).get("layout", "folders")),
        recorded=(base / assignment["recorded"]).resolve() if assignment.get("recorded") else None,
    )


def sort_key(number: str) -> tuple:
    """Order check numbers like Gradescope does: 1.2 < 1.10, numerically per piece."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in number.split("."))
