"""What a person sees in a terminal: progress while checks run, then a per-question table."""
from __future__ import annotations

import sys
from typing import Any, TextIO

from .config import sort_key

COLOURS = {"passed": "32", "failed": "31", "partial": "33", "dim": "2"}


class Console:
    """Progress lines and the final table; colour only when writing to a terminal."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.colour = hasattr(self.stream, "isatty") and self.stream.isatty()

    def _c(self, text: str, kind: str) -> str:
        return f"\x1b[{COLOURS[kind]}m{text}\x1b[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def progress(self, index: int, total: int, number: str, name: str, status: str, seconds: float, score: float, weight: float) -> None:
        kind = "passed" if status == "passed" else ("partial" if score > 0 else "failed")
        mark = self._c(f"{score:g}/{weight:g}", kind)
        self.line(f"[{index:>3}/{total}] {number:<8} {name[:58]:<58} {mark:>7} {self._c(f'{seconds:5.1f}s', 'dim')}")

    def table(self, results: dict[str, Any], questions: dict[str, str]) -> None:
        """Per-question points, then one line per check that lost points with its reason."""
        if self.quiet:
            return
        groups: dict[str, list[dict[str, Any]]] = {}
        for t in results["tests"]:
            groups.setdefault(t["number"].rsplit(".", 1)[0], []).append(t)
        self.line()
        self.line(f"{'question':<10} {'points':>13}  title")
        for q in sorted(groups, key=sort_key):
            got = sum(t["score"] for t in groups[q])
            out_of = sum(t["max_score"] for t in groups[q])
            kind = "passed" if got >= out_of else ("partial" if got > 0 else "failed")
            self.line(f"{q:<10} {self._c(f'{got:6.2f} / {out_of:<5g}', kind)}  {questions.get(q, '')}")
        total = sum(t["max_score"] for t in results["tests"])
        self.line(f"{'total':<10} {results['score']:6.2f} / {total:<5g}")
        lost = [t for t in results["tests"] if t["score"] < t["max_score"]]
        if lost:
            self.line()
            self.line("Checks that lost points:")
            for t in lost:
                reason = t["output"].splitlines()[0] if t["output"] else ""
                self.line(f"  {t['number']:<8} {t['name'][:50]:<50} {reason[:160]}")
