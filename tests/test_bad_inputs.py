"""Badly formed submissions: a clear message for what is wrong, full credit for what is fine (issue 6).

Each graded file of a submission is judged on its own, so several bad inputs share one
submission when they sit in different files; every check is then compared with the
reference's score on the same check. One check per graded file keeps CI time down:

=====================  ==========================================
check                  graded file it exercises
=====================  ==========================================
1.7.6  (KLD prior)     part1/utils.py
1.8.1  (encoder)       part1/cnn_encoder_decoder.py
1.11.1 (bernoulli)     part1/estimators.py
2.1.1  (FGSM values)   part2/adversarial_attack.py
2.2.4  (train steps)   part2/utils.py
=====================  ==========================================
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import SOLUTIONS, grade

CHECK_OF = {"part1/utils.py": "1.7.6", "part1/cnn_encoder_decoder.py": "1.8.1", "part1/estimators.py": "1.11.1",
            "part2/adversarial_attack.py": "2.1.1", "part2/utils.py": "2.2.4"}
SELECTION = tuple(CHECK_OF.values())
HUGE_BYTES = 50 << 20

pytestmark = pytest.mark.slow


def _grade(sub: Path, tmp: Path) -> dict[str, Any]:
    return grade(sub, tmp / "results.json", "--profile", "quick", *[a for n in SELECTION for a in ("--only", n)])


def _copy(dest: Path, parts: tuple[str, ...] = ("part1", "part2")) -> Path:
    for part in parts:
        shutil.copytree(SOLUTIONS / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _by_number(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["number"]: t for t in results["tests"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    tmp = tmp_path_factory.mktemp("reference")
    results = _grade(_copy(tmp / "sub"), tmp)
    scores = {n: t["score"] for n, t in _by_number(results).items()}
    assert set(scores) == set(SELECTION)
    assert all(s == t["max_score"] for s, t in zip(scores.values(), results["tests"])), "reference lost points"
    return scores


def assert_fine(results: dict[str, Any], reference: dict[str, float], files: list[str]) -> None:
    """The checks of ``files`` keep the reference's score."""
    tests = _by_number(results)
    for f in files:
        n = CHECK_OF[f]
        assert tests[n]["score"] == reference[n], f"{f} is fine but check {n} scored {tests[n]['score']}:\n{tests[n]['output'][:1500]}"


def assert_reported(results: dict[str, Any], file: str, *phrases: str) -> None:
    """The check of ``file`` scored 0 and its output names the file and says what is wrong."""
    t = _by_number(results)[CHECK_OF[file]]
    assert t["score"] == 0, f"{file}: check {t['number']} scored {t['score']}"
    out = t["output"]
    assert file in out or file.split("/")[1] in out, f"{file}: the output does not name the file:\n{out[:1500]}"
    for phrase in phrases:
        assert phrase.lower() in out.lower(), f"{file}: the output does not say {phrase!r}:\n{out[:1500]}"


def test_empty_submission(tmp_path: Path, reference: dict[str, float]) -> None:
    (tmp_path / "sub").mkdir()
    results = _grade(tmp_path / "sub", tmp_path)
    assert results["score"] == 0
    for f in CHECK_OF:
        assert_reported(results, f, "was not found in your submission")


def test_only_one_part(tmp_path: Path, reference: dict[str, float]) -> None:
    results = _grade(_copy(tmp_path / "sub", ("part1",)), tmp_path)
    assert_fine(results, reference, [f for f in CHECK_OF if f.startswith("part1/")])
    for f in ("part2/adversarial_attack.py", "part2/utils.py"):
        assert_reported(results, f, "was not found in your submission")


def test_syntax_error_missing_module_huge_file_and_deep_folders(tmp_path: Path, reference: dict[str, float]) -> None:
    """part1: a syntax error, a missing package used by a graded function, a 50 MB file; part2 five folders deep,
    importing packages that are not installed but never used (fine: they become placeholders)."""
    sub = tmp_path / "sub"
    _copy(sub, ("part1",))
    shutil.copytree(SOLUTIONS / "part2", sub / "a" / "b" / "c" / "part2", ignore=shutil.ignore_patterns("__pycache__"))
    utils = sub / "part1" / "utils.py"
    utils.write_text(utils.read_text().replace("def KLD(mean: Tensor, log_std: Tensor) -> Tensor:",
                                               "def KLD(mean: Tensor, log_std: Tensor) -> Tensor\n"))
    est = sub / "part1" / "estimators.py"
    after_future = "from __future__ import annotations\n"
    est.write_text(est.read_text().replace(after_future, after_future + "import numpy_but_misspelled_zz  # not installed\n")
                   .replace("    return (target * torch.log(mu)",
                            "    numpy_but_misspelled_zz.seterr(all='ignore')\n    return (target * torch.log(mu)"))
    aa = sub / "a" / "b" / "c" / "part2" / "adversarial_attack.py"
    aa.write_text(aa.read_text().replace(after_future, after_future + "import seaborn_but_absent_zz as sns\n"
                                         "from mnist import mnist\nfrom sklearn_absent_zz.manifold import TSNE\n"))
    cnn = sub / "part1" / "cnn_encoder_decoder.py"
    with cnn.open("a") as f:
        line = "# " + "x" * 1021 + "\n"
        f.write(line * (HUGE_BYTES // len(line)))
    assert cnn.stat().st_size > HUGE_BYTES
    results = _grade(sub, tmp_path)
    assert_reported(results, "part1/utils.py", "syntax error", "line")
    assert_reported(results, "part1/estimators.py", "numpy_but_misspelled_zz", "not installed")
    assert_reported(results, "part1/cnn_encoder_decoder.py", "too large")
    assert_fine(results, reference, ["part2/adversarial_attack.py", "part2/utils.py"])
    assert "a/b/c/part2/adversarial_attack.py" in results["output"], "the report should say which copy was graded"


def test_binary_non_utf8_and_two_copies(tmp_path: Path, reference: dict[str, float]) -> None:
    """part1: a binary utils.py, a Latin-1 estimators.py; part2: a broken second copy that must be ignored."""
    sub = _copy(tmp_path / "sub")
    (sub / "part1" / "utils.py").write_bytes(bytes(range(256)) * 64)
    est = sub / "part1" / "estimators.py"
    est.write_bytes(b"# r\xe9sum\xe9 of the estimators (saved as Latin-1)\n" + est.read_bytes())
    old = sub / "backup" / "part2"
    old.mkdir(parents=True)
    src = (SOLUTIONS / "part2" / "adversarial_attack.py").read_text()
    (old / "adversarial_attack.py").write_text(src.replace("def fgsm_attack(", "def fgsm_attack_old(", 1))
    results = _grade(sub, tmp_path)
    assert_reported(results, "part1/utils.py", "binary")
    assert_reported(results, "part1/estimators.py", "not UTF-8")
    assert_fine(results, reference, ["part1/cnn_encoder_decoder.py", "part2/adversarial_attack.py", "part2/utils.py"])
    out = results["output"]
    assert "ambiguous" in out and "backup/part2/adversarial_attack.py" in out, (
        f"two copies of part2/adversarial_attack.py should be reported:\n{out[:2000]}")
