"""report.html (issue 14): written beside the results of every grade, self-contained, with the
pictures of the student's models; rendered by a real browser when one is installed."""
from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.mutants_part2 import MUTANTS
from tests.support import SOLUTIONS, grade, make_submission


def _pngs(html: str) -> list[tuple[int, int, bytes]]:
    """(width, height, greyscale pixels) of every inline PNG."""
    out = []
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html):
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", png[16:24])
        idat = b"".join(png[i + 8:i + 8 + struct.unpack(">I", png[i:i + 4])[0]]
                        for i in [m.start() - 4 for m in re.finditer(b"IDAT", png)])
        raw = zlib.decompress(idat)
        pixels = b"".join(raw[r * (w + 1) + 1:(r + 1) * (w + 1)] for r in range(h))
        out.append((w, h, pixels))
    return out


@pytest.mark.slow
def test_the_report_shows_checks_and_pictures(tmp_path: Path):
    broken = next(m for m in MUTANTS if m.function == "part2.adversarial_attack.fgsm_attack")
    sub = make_submission(tmp_path / "sub", broken.edits, base=SOLUTIONS)
    results = grade(sub, tmp_path / "out" / "results.json", "--only", "1.10.2", "--only", "2.1.*")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "<script" not in page  # self-contained
    for t in results["tests"]:
        assert f">{t['number']}<" in page
    lost = [t for t in results["tests"] if t["score"] < t["max_score"]]
    assert lost and "lost points" in page and "python -m autograder grade . --only" in page
    images = _pngs(page)
    # the manifold (yours, expected) and the FGSM figure (original, adversarial, difference)
    assert len(images) >= 5
    for w, h, pixels in images:
        assert w > 20 and h > 20 and len(set(pixels)) > 4, (w, h)  # not blank


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_a_browser_renders_the_report(tmp_path: Path):
    from PIL import Image

    grade(make_submission(tmp_path / "sub", base=SOLUTIONS), tmp_path / "out" / "results.json", "--only", "1.10.2",
          "--only", "2.1.8")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,1400", f"--screenshot={shot}", (tmp_path / "out" / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    image = Image.open(shot).convert("L")
    assert image.size == (1100, 1400)
    histogram = image.histogram()
    dark = sum(histogram[:100]) / (1100 * 1400)
    assert 0.01 < dark < 0.6  # text and pictures on a white page: neither blank nor black


@pytest.mark.slow
def test_the_smoke_pictures_show_the_reference_beside_the_student(tmp_path: Path):
    """``python -m autograder prepare`` (setup.sh) keeps the reference's pictures of the VAE smoke
    training; a grade's report shows them under the student's (same test images, same latents)."""
    from autograder.prepare import REFERENCE_FIGURES

    if not REFERENCE_FIGURES.exists():
        proc = subprocess.run([sys.executable, "-m", "autograder", "prepare"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    grade(make_submission(tmp_path / "sub", base=SOLUTIONS), tmp_path / "out" / "results.json", "--only", "1.9.7")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for row in ("reconstruction", "prior sample", "reference: reconstruction", "reference: prior sample"):
        assert f'alt="{row}"' in page, row
