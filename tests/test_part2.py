"""The part-2 checks (Q2.1-Q2.3, adversarial attacks) on known submissions.

- the reference gets full marks on every part-2 check, smoke trainings included;
- the untouched handout gets 0 on each, with one clear NotImplementedError line and no grader error;
- every mutant of tests/mutants_part2.py loses points on a check tagged with the mutated
  function, on no check of another function, and names its mistake where listed;
- every variant (a correct implementation written differently) gets full marks;
- the fixed inputs still separate the right answers from the catalogued mistakes (so a
  retrained grader model or new data cannot silently blunt a check).

Each submission case is one real grade through ``python -m autograder grade`` (profile
``quick``, part 2 only), i.e. what a student would see.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autograder import config
from tests.mutants_part2 import MUTANTS, VARIANTS
from tests.support import (STUDENT, assert_full_marks, assert_handout_zero, assert_mutants_caught, by_id, grade,
                           group_id, independent_groups, make_submission)

MUTANT_GROUPS = independent_groups(MUTANTS)
VARIANT_GROUPS = independent_groups(VARIANTS)

ONLY = ("--profile", "quick", "--only", "part2.*")
CFG = config.load()
MINE = sorted(cid for cid in CFG.checks if cid.startswith("part2."))


def test_the_part2_checks_are_configured():
    points: dict[str, float] = {}
    for cid in MINE:
        points[CFG.checks[cid].question] = points.get(CFG.checks[cid].question, 0) + CFG.checks[cid].weight
    assert points == {"2.1": 5.0, "2.2": 5.0, "2.3": 6.0}, points
    smoke = [cid for cid in MINE if ".smoke." in cid]
    assert len(smoke) == 4 and len(MINE) >= 18, MINE


def test_mutant_and_variant_ids_are_unique():
    ids = [m.id for m in MUTANTS] + [v.id for v in VARIANTS]
    assert len(ids) == len(set(ids))
    assert len(MUTANTS) >= 20 and len(VARIANTS) >= 8


def test_the_grader_model_asset_is_small_and_loads_as_tensors():
    from autograder.checks.part2.helpers import ASSET

    assert ASSET.stat().st_size < 1 << 20
    state = torch.load(ASSET, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values()) and "fc.weight" in state


@pytest.mark.parametrize("edition", ["default", "uva2024"])
def test_the_fixed_loaders_separate_the_test_attack_mistakes(edition: str):
    """The stand-in attack flips some correct examples and fixes some wrong ones, so every
    catalogued accuracy formula gives a different number than the right one, for both attacks,
    in this handout's input space and in the UvA template's (normalised 3x32x32)."""
    from autograder import config
    from autograder.checks import reference
    from autograder.checks.part2 import drivers_part2
    from autograder.checks.part2 import helpers as H
    from autograder.checks.part2 import mistakes
    from autograder.checks.part2.drivers_part2 import pattern_perturb
    from autograder.checks.part2.test_test_attack import _args, _examples

    cfg = config.load(edition=edition)
    drivers_part2.configure(cfg.conventions.get("part2", {}))
    _examples.cache_clear()
    try:
        data, models = (reference.load(CFG.reference_dir, "part2", m) for m in ("data", "models"))
        x, y = _examples(data, models)
        model = H.grader_model(models)
        assert len(y) == 40 and x.shape[1:] == (H.space().channels, H.space().size, H.space().size)
        for every in (1, 2):  # the loaders of the batch-size-1 checks, and of the batches check
            xs, ys = x[::every], y[::every]
            init = H.predictions(model, xs) == ys
            for attack in ("fgsm", "pgd"):
                final = H.predictions(model, pattern_perturb(xs, _args(attack)["epsilon"])) == ys
                right = float((init & final).double().mean())
                assert every == 2 or (init & ~final).sum() >= 3, "too few successful stand-in attacks for adv_examples"
                for name, wrong in mistakes.TEST_ATTACK.items():
                    assert abs(wrong(init, final) - right) > 1e-6, (every, attack, name)
    finally:
        drivers_part2.configure({})
        _examples.cache_clear()


# ------------------------------------------------------------- the smoke tests' standard-training baseline
def _small_settings(**changes: object) -> dict:
    """The configured smoke settings on a small budget (the baseline trains in ~0.3 s)."""
    from autograder.checks.part2 import smoke

    s = dict(smoke.settings(CFG.threshold), train_images=256, valid_images=64, test_images=[5000, 100])
    s.update(changes)
    return s


def _ref2(module: str):
    from autograder.checks import reference

    return reference.load(CFG.reference_dir, "part2", module)


def test_the_baseline_is_computed_once_cached_and_keyed_by_everything_it_depends_on(tmp_path: Path,
                                                                                     monkeypatch: pytest.MonkeyPatch):
    from autograder.checks.part2 import smoke

    monkeypatch.setattr(smoke, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(smoke, "_MEMO", {})
    computed = []
    real = smoke.compute_baseline
    monkeypatch.setattr(smoke, "compute_baseline", lambda ref2, s: computed.append(s) or real(ref2, s))
    s = _small_settings()
    first = {a: smoke.baseline(_ref2, s, a) for a in smoke.ATTACKS}
    assert len(computed) == 1 and len(list(tmp_path.glob("part2_baseline_*.json"))) == 1
    assert 0.0 <= first["pgd"] <= first["fgsm"] <= 1.0  # PGD is the stronger attack on a standard model
    monkeypatch.setattr(smoke, "_MEMO", {})  # a new grade: read from the file, not recomputed
    assert {a: smoke.baseline(_ref2, s, a) for a in smoke.ATTACKS} == first and len(computed) == 1
    assert real(_ref2, s) == first  # the stored numbers are what a computation gives
    monkeypatch.setattr(smoke, "_MEMO", {})
    other = _small_settings(seed=1)  # other settings: another key, computed again
    smoke.baseline(_ref2, other, "pgd")
    assert len(computed) == 2 and len(list(tmp_path.glob("part2_baseline_*.json"))) == 2
    assert smoke.baseline_key(CFG.reference_dir / "part2", s) != smoke.baseline_key(CFG.reference_dir / "part2", other)
    # A threshold or a defence's arguments are not inputs of the baseline: same key.
    assert smoke.baseline_key(CFG.reference_dir / "part2", _small_settings(pgd_min_gain=0.5, fgsm_defense={})) == \
        smoke.baseline_key(CFG.reference_dir / "part2", s)
    for path in tmp_path.glob("part2_baseline_*.json"):
        path.write_text('{"key": "forged", "baseline": {"fgsm": 1.0, "pgd": 1.0}}')  # unreadable for this key
    monkeypatch.setattr(smoke, "_MEMO", {})
    assert smoke.baseline(_ref2, s, "pgd") == first["pgd"] and len(computed) == 3


def test_a_cached_baseline_keeps_torch_dynamo_out_of_the_grading_process(tmp_path: Path):
    """Why the cache exists: the first torch.optim optimizer imports torch._dynamo (~70 MB)."""
    import subprocess
    import sys

    from tests.support import ROOT

    code = f"""
import sys, json
from pathlib import Path
from autograder import config
from autograder.checks import reference
from autograder.checks.part2 import smoke
smoke.CACHE_DIR = Path({str(tmp_path)!r})
cfg = config.load()
s = dict(smoke.settings(cfg.threshold), train_images=256, valid_images=64, test_images=[5000, 100])
ref2 = lambda m: reference.load(cfg.reference_dir, "part2", m)
smoke.baseline(ref2, s, sys.argv[1])
print(json.dumps("torch._dynamo" in sys.modules))
"""
    run = lambda: subprocess.run([sys.executable, "-c", code, "pgd"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.strip()
    assert run() == "true"  # no cache yet: computed here, with Adam
    assert run() == "false"  # cached: read only


def test_prepare_command_stores_the_configured_baseline():
    import json
    import subprocess
    import sys

    from autograder.checks.part2 import smoke
    from tests.support import ROOT

    out = subprocess.run([sys.executable, "-m", "autograder", "prepare"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    key = smoke.baseline_key(CFG.reference_dir / "part2", smoke.settings(CFG.threshold, CFG.conventions.get("part2", {})))
    stored = json.loads(smoke._cache_file(key).read_text())
    assert stored["key"] == key and set(stored["baseline"]) == set(smoke.ATTACKS)
    assert f"PGD {stored['baseline']['pgd']:.3f}" in out.stdout


@pytest.mark.slow
def test_reference_gets_full_marks(tmp_path: Path):
    results = grade(make_submission(tmp_path / "sub", parts=("part2",)), tmp_path / "r.json", "--only", "part2.*")
    got = by_id(results)
    assert set(MINE) <= set(got), f"checks not graded: {sorted(set(MINE) - set(got))}"
    assert_full_marks(results, "reference")


@pytest.mark.slow
def test_handout_gets_zero_with_one_clear_line_per_check(tmp_path: Path):
    results = grade(STUDENT, tmp_path / "r.json", "--only", "part2.*")
    assert_handout_zero(results, MINE, ("not implemented yet",))


@pytest.mark.slow
@pytest.mark.parametrize("group", MUTANT_GROUPS, ids=group_id)
def test_mutants_lose_points_on_their_functions_only(tmp_path: Path, group):
    """Each mutant loses points on its own function's checks and names its mistake; graded in
    groups of independent functions (one mistake, one deduction keeps their verdicts apart)."""
    sub = make_submission(tmp_path / "sub", [e for m in group for e in m.edits], parts=("part2",))
    results = grade(sub, tmp_path / "r.json", *ONLY)
    assert_mutants_caught(results, group)


@pytest.mark.slow
@pytest.mark.parametrize("group", VARIANT_GROUPS, ids=group_id)
def test_variants_get_full_marks(tmp_path: Path, group):
    sub = make_submission(tmp_path / "sub", [e for v in group for e in v.edits], parts=("part2",))
    results = grade(sub, tmp_path / "r.json", *ONLY)
    assert_full_marks(results, group_id(group))
