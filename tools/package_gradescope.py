"""Build the zip to upload to Gradescope's "Configure Autograder" page.

The zip holds every file git tracks (so no .venv, data or run outputs), with
``setup.sh`` and ``run_autograder`` at its root as Gradescope requires.

    python tools/package_gradescope.py [--out autograder.zip]
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


def build(out: Path, root: Path = ROOT) -> list[str]:
    """Write the zip; returns the archived paths."""
    files = tracked_files(root)
    missing = [r for r in REQUIRED if r not in files]
    if missing:
        raise SystemExit(f"cannot package: {', '.join(missing)} not tracked by git")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            info = zipfile.ZipInfo.from_file(root / rel, rel)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (root / rel).read_bytes())  # keeps the exec bit of the scripts
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "autograder.zip")
    args = parser.parse_args(argv)
    files = build(args.out)
    print(f"wrote {args.out} ({len(files)} files, {args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
