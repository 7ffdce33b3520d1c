"""Build the zip to upload to Gradescope's "Configure Autograder" page.

The zip holds every file git tracks (so no .venv, data or run outputs), with
``setup.sh`` and ``run_autograder`` at its root as Gradescope requires.

    python tools/package_gradescope.py [--out autograder.zip] [--edition uva2024]

``--edition`` writes ``edition = "NAME"`` under ``[grader]`` in the packaged grading.toml, so
every submission on that Gradescope assignment is graded as that course edition.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("setup.sh", "run_autograder")


def tracked_files(root: Path = ROOT) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return sorted(p for p in out.decode().split("\0") if p and (root / p).is_file())


def with_edition(config_text: str, edition: str) -> str:
    """grading.toml's text with ``[grader] edition`` set (replacing one already there)."""
    lines = config_text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == "[grader]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
    kept = [line for line in lines[start + 1:end] if not line.lstrip().startswith("edition")]
    return "".join(lines[:start + 1] + [f'edition = "{edition}"\n'] + kept + lines[end:])


def build(out: Path, root: Path = ROOT, edition: str | None = None) -> list[str]:
    """Write the zip; returns the archived paths."""
    files = tracked_files(root)
    missing = [r for r in REQUIRED if r not in files]
    if missing:
        raise SystemExit(f"cannot package: {', '.join(missing)} not tracked by git")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            info = zipfile.ZipInfo.from_file(root / rel, rel)
            info.compress_type = zipfile.ZIP_DEFLATED
            data = (root / rel).read_bytes()
            if rel == "grading.toml" and edition:
                data = with_edition(data.decode("utf-8"), edition).encode("utf-8")
            zf.writestr(info, data)  # keeps the exec bit of the scripts
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "autograder.zip")
    parser.add_argument("--edition", default=None, help="grade every submission as this course edition")
    args = parser.parse_args(argv)
    if args.edition:
        sys.path.insert(0, str(ROOT))
        from autograder import config

        config.load(edition=args.edition)  # refuses an unknown edition, listing the known ones
    files = build(args.out, edition=args.edition)
    print(f"wrote {args.out} ({len(files)} files, {args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
