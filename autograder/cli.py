"""Command line: ``python -m autograder grade SUBMISSION [--results FILE] [--only PATTERN]``,
``python -m autograder list`` and ``python -m autograder prepare`` (run by setup.sh).

Exit status 0 whenever a results file was written, whatever the score (SPEC §3);
2 only when the command line or the configuration is wrong.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import config as config_mod
from .console import Console


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="Grade a VAE / adversarial-attacks submission.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade a folder laid out like student/ (part1/, part2/ at any depth)")
    g.add_argument("submission", type=Path)
    g.add_argument("--results", type=Path, default=Path("results.json"), help="where to write Gradescope results (default: results.json)")
    g.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="grade only checks whose tag, number or id matches this glob (repeatable), e.g. 'part1.utils.*'")
    g.add_argument("--config", type=Path, default=None, help="configuration file (default: grading.toml of this repository)")
    g.add_argument("--profile", default=None, help="profile of the configuration to grade (default: the config's [grader] profile)")
    g.add_argument("--edition", default=None,
                   help="the course edition the submission was written for (default: the config's [grader] edition, "
                        "else this project's own handout); see `python -m autograder list --editions`")
    g.add_argument("--quiet", action="store_true", help="print nothing; only write the results file")
    g.add_argument("--record", type=Path, default=None, metavar="FILE",
                   help="instructors: record the reference values the checks use into FILE (grade the reference; "
                        "tools/make_handout.py --grader ships them as the student edition's expectations)")
    ls = sub.add_parser("list", help="list the configured checks of the active profile")
    ls.add_argument("--config", type=Path, default=None)
    ls.add_argument("--edition", default=None)
    ls.add_argument("--editions", action="store_true", help="list the editions instead")
    p = sub.add_parser("prepare", help="precompute what every grade reuses (setup.sh runs this; grades work without it, slower)")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--edition", default=None, help="prepare for this edition (default: the config's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("grade", "prepare"):
        from .sandbox import forkserver

        forkserver.start()  # before any configuration, check or reference is loaded (see its docstring)
    try:
        cfg = config_mod.load(args.config, getattr(args, "profile", None), getattr(args, "edition", None))
    except config_mod.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "list" and args.editions:
        print("default    this project's own handout (student/)")
        for name in cfg.editions:
            print(f"{name:<10} {config_mod.load(args.config, edition=name).title}")
        return 0
    if args.command == "list":
        for spec in sorted((c for c in cfg.checks.values() if cfg.selected(c)), key=lambda s: config_mod.sort_key(s.number)):
            print(f"{spec.number:<8} {spec.weight:>5g}  {spec.visibility:<15} {spec.id}  {spec.name}")
        return 0
    if args.command == "prepare":
        from .prepare import run

        return 0 if run(cfg, Console()) else 1
    from .runner import grade

    grade(args.submission, args.results, cfg, args.only, Console(quiet=args.quiet), record=args.record)
    return 0
