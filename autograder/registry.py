"""How a check declares itself: gradescope-utils' vocabulary, backed by ``grading.toml``.

A check is a pytest test function in ``autograder/checks/`` decorated like::

    @check("part1.utils.KLD.reference")      # its id in grading.toml: number, name, weight, visibility
    @grades("part1.utils.KLD")                # the one student function it grades
    @tags("part1.utils.KLD")                  # the student functions it exercises (for the report)
    def test_kld_reference(part1): ...

One mistake, one deduction: a check grades exactly one function. While it runs, the
part's worker replaces the graded functions that function calls (``depends`` in
grading.toml) by the grader's stand-ins (the exact maths of their docstrings,
``drivers_partN_standins.py``), so a bug or a missing function elsewhere is charged only
to its own checks. ``@grades(ALL)`` marks a check that
must run the student's own code everywhere (the forbidden-API policy).

``weight``/``number``/``visibility`` are deliberately *not* arguments here: they
live in the config, so an instructor changes them in one place. A check fails by
raising :class:`CheckFailed` (or :func:`fail`); partial credit is set through the
``partial_credit`` fixture and leaderboard values through ``leaderboard``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class CheckFailed(AssertionError):
    """A check's verdict that the student's code is wrong; the message is shown to the student."""

    def __init__(self, message: str, mistake: str | None = None) -> None:
        self.mistake = mistake
        text = message if mistake is None else f"{message}\nLikely mistake: {mistake}"
        super().__init__(text)


def fail(message: str, mistake: str | None = None) -> None:
    """Fail the current check with a message for the student (and a named mistake if known)."""
    raise CheckFailed(message, mistake)


def check(check_id: str) -> Callable[[F], F]:
    """Mark a test function as the configured check ``check_id``."""

    def decorate(fn: F) -> F:
        fn._ag_check = check_id  # type: ignore[attr-defined]
        return fn

    return decorate


def tags(*function_ids: str) -> Callable[[F], F]:
    """Name the student functions a check exercises (``part1.utils.KLD``)."""

    def decorate(fn: F) -> F:
        fn._ag_tags = tuple(function_ids)  # type: ignore[attr-defined]
        return fn

    return decorate


ALL = "*"  # @grades(ALL): the check judges every graded function (no stand-ins)


def grades(function_id: str) -> Callable[[F], F]:
    """Name the one student function a check grades (``part1.utils.KLD``, or :data:`ALL`)."""

    def decorate(fn: F) -> F:
        fn._ag_grades = function_id  # type: ignore[attr-defined]
        return fn

    return decorate


def check_id_of(fn: Callable[..., Any]) -> str | None:
    return getattr(fn, "_ag_check", None)


def tags_of(fn: Callable[..., Any]) -> tuple[str, ...]:
    return getattr(fn, "_ag_tags", ())


def grades_of(fn: Callable[..., Any]) -> str:
    """The function a check grades: its ``@grades``, else its first tag ('' when it has none)."""
    explicit = getattr(fn, "_ag_grades", None)
    if explicit:
        return explicit
    found = tags_of(fn)
    return found[0] if found else ""


@dataclass
class PartialCredit:
    """Set by a check to award a fraction of its weight (gradescope-utils' ``partial_credit``)."""

    fraction: float | None = None
    notes: list[str] = field(default_factory=list)
    # A check that finds out which functions a failure is about (a policy check) names them here;
    # the results' tags then list those instead of the declared ones.
    tags: tuple[str, ...] | None = None

    def set(self, fraction: float, note: str = "") -> None:
        self.fraction = max(0.0, min(1.0, float(fraction)))
        if note:
            self.notes.append(note)


@dataclass
class Leaderboard:
    """Values a check publishes on Gradescope's leaderboard (``name``, ``value``, ``order``)."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def record(self, name: str, value: float, order: str = "asc") -> None:
        self.entries = [e for e in self.entries if e["name"] != name]
        self.entries.append({"name": name, "value": value, "order": order})


@dataclass
class Figures:
    """Pictures a check attaches to the local report (``report.html``): image grids, bar charts
    and curves of the student's own models, as plain numbers; they never change a score."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    check: str = ""  # the number of the running check (set by the plugin)

    def images(self, title: str, rows: list[tuple[str, Any]], caption: str = "",
               labels: list[list[str]] | None = None) -> None:
        """Rows of images: ``(row name, tensor [N, H, W] or [N, C, H, W] with values in [0, 1])``."""
        self.entries.append({"check": self.check, "kind": "images", "title": title, "caption": caption,
                             "rows": rows, "labels": labels})

    def bars(self, title: str, values: dict[str, float], caption: str = "", limit: float = 1.0) -> None:
        self.entries.append({"check": self.check, "kind": "bars", "title": title, "caption": caption,
                             "values": dict(values), "limit": limit})

    def curve(self, title: str, ys: list[float], caption: str = "", x_label: str = "step") -> None:
        self.entries.append({"check": self.check, "kind": "curve", "title": title, "caption": caption,
                             "ys": [float(y) for y in ys], "x_label": x_label})
