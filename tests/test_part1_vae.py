"""The VAE and manifold checks (Q1.9 VAE.forward/VAE.sample, Q1.10 visualize_manifold) on known submissions.

- the reference gets full marks on every one of them, through train_torch.py and,
  separately, through train_pl.py (Lightning) when train_torch.py is the handout or absent;
- the untouched handout gets 0 on each, with one clear line and no grader error;
- every mutant of tests/mutants_part1_vae.py loses points on a check tagged with the
  mutated function, on no check of another function, and names its mistake;
- every variant (a correct implementation written differently) gets full marks;
- the grader's own maths (expected manifold, test bpd) agrees with the reference.

Each submission case is one real grade through ``python -m autograder grade`` (profile
``quick``, part 1 only) except the smoke tests, which grade the two smoke checks of the
reference once (``--only '*.smoke.*'``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from autograder import config
from tests.mutants_part1_vae import MUTANTS, VARIANTS
from tests.support import (STUDENT, assert_full_marks, assert_handout_zero, assert_mutants_caught, by_id, grade,
                           group_id, independent_groups, make_submission)

MUTANT_GROUPS = independent_groups(MUTANTS)
VARIANT_GROUPS = independent_groups(VARIANTS)

ONLY = ("--profile", "quick", "--only", "part1.*")
PREFIXES = ("part1.vae.", "part1.manifold.", "part1.no_torch_distributions")
MINE = sorted(cid for cid in config.load().checks if cid.startswith(PREFIXES))
QUICK = sorted(cid for cid in MINE if ".smoke." not in cid)
SMOKE = sorted(cid for cid in MINE if ".smoke." in cid)


# ---------------------------------------------------------------------------- configuration and maths (fast)
def test_the_vae_checks_are_configured():
    cfg = config.load()
    points: dict[str, float] = {}
    for cid in MINE:
        points[cfg.checks[cid].question] = points.get(cfg.checks[cid].question, 0) + cfg.checks[cid].weight
    assert points == {"1.9": 9.0, "1.10": 3.0}, points
    assert len(SMOKE) == 2 and all(cfg.checks[c].budget_s for c in SMOKE)
    s = cfg.threshold("part1.vae_smoke")
    assert s["reference_bpd"] < s["max_test_bpd"] < 4.0, "the threshold must sit between the reference and an untrained model"


def test_mutant_and_variant_ids_are_unique_and_cover_the_functions():
    ids = [m.id for m in MUTANTS] + [v.id for v in VARIANTS]
    assert len(ids) == len(set(ids))
    assert len(MUTANTS) >= 12 and len(VARIANTS) >= 4
    assert {m.function for m in MUTANTS} == {"part1.train.VAE.forward", "part1.train.VAE.sample",
                                             "part1.utils.visualize_manifold"}
    assert all(m.mistake for m in MUTANTS)


def test_expected_manifold_equals_the_reference_on_the_known_decoder():
    """vae_support's expected grid (the grader's own maths) == the reference visualize_manifold."""
    from autograder.checks import reference
    from autograder.checks.part1 import vae_support as vs

    ref = reference.load(config.load().reference_dir, "part1", "utils")
    for g in (1, 5, 20):
        want = ref.visualize_manifold(vs.drv.KnownDecoder(), grid_size=g)
        ok, orientation, mine = vs.match_orientation(want, g, vs.known_logits_of, atol=1e-5)
        assert ok and orientation == (False, 1, 1), g
        assert tuple(mine.shape) == vs.grid_shape(g)


@pytest.mark.parametrize("n, nrow, channels, padding", [(25, 5, 1, 2), (400, 20, 1, 2), (7, 3, 1, 2), (1, 1, 1, 2),
                                                         (12, 8, 3, 2), (6, 4, 1, 0), (10, 20, 1, 5)])
def test_grid_of_lays_images_out_like_make_grid(n: int, nrow: int, channels: int, padding: int):
    """The grader's own tiling (it does not import torchvision) equals make_grid's output."""
    from torchvision.utils import make_grid

    from autograder.checks.part1 import vae_support as vs

    images = torch.rand(n, channels, 28, 28, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    want = make_grid(images, nrow=nrow, padding=padding)
    got = vs.grid_of(images, nrow, padding=padding)
    assert got.shape == want.shape and torch.equal(got, want)


def test_grader_losses_equal_the_reference_formulas():
    from autograder.checks import reference
    from autograder.checks.part1 import vae_support as vs

    utils = reference.load(config.load().reference_dir, "part1", "utils")
    g = torch.Generator().manual_seed(0)
    logits, imgs = torch.randn(4, 16, 28, 28, generator=g), vs.random_images(4, 1)
    mean, log_std = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    ce = torch.nn.functional.cross_entropy(logits.double(), imgs[:, 0], reduction="none").flatten(1).sum(1)
    assert torch.allclose(vs.rec_per_image(logits, imgs), ce)
    assert torch.allclose(vs.kld_per_image(mean, log_std), utils.KLD(mean.double(), log_std.double()))
    assert torch.allclose(vs.bpd_per_image(ce), utils.elbo_to_bpd(ce, imgs.shape))
    zero = torch.zeros(2, 16, 28, 28)
    assert abs(float(vs.rec_per_image(zero, vs.random_images(2, 3)).mean()) - vs.L_REC_AT_ZERO) < 1e-6


def test_chi_square_accepts_the_softmax_and_rejects_the_argmax():
    from autograder.checks.part1 import mistakes
    from autograder.checks.part1 import vae_support as vs

    logits = vs.sample_logits()
    probs = torch.softmax(logits, 0).permute(1, 2, 0).reshape(-1, 16)
    g = torch.Generator().manual_seed(3)
    good = torch.multinomial(probs.repeat(64, 1), 1, generator=g).reshape(64, 28, 28)
    assert min(p for p, _, _ in vs.chi_square_pvalues(good, logits)) > 1e-6
    assert mistakes.diagnose_sampler(good, logits) is None
    bad = logits.argmax(0).expand(64, 28, 28)
    assert max(p for p, _, _ in vs.chi_square_pvalues(bad, logits)) < 1e-12
    assert "argmax" in mistakes.diagnose_sampler(bad, logits)


def test_static_scan_finds_torch_distributions():
    from autograder.checks.part1.test_distributions import function_id, static_uses

    src = ("import torch\nimport torch.distributions as D\nfrom torch.distributions import Normal\n"
           "from torch import distributions\nx = torch.distributions.Normal(0, 1)\n"
           "import importlib\nm = importlib.import_module('torch.distributions')\n"
           "self_distributions = object()\n'''torch.distributions is not allowed'''\n"
           "def visualize_manifold(decoder):\n    return torch.distributions.Normal(0, 1).icdf(0.5)\n")
    found = static_uses(src, "utils.py")
    assert sum(u.line == 5 for u in found) == 1
    assert len(found) == 6, found
    inside = [u for u in found if u.function != "<module>"]
    assert [(u.function, u.name, u.line) for u in inside] == [("visualize_manifold", "Normal", 11)]
    assert function_id("part1", "utils.py", "visualize_manifold", {}) == "part1.utils.visualize_manifold"
    assert function_id("part1", "train_pl.py", "VAE.forward", {"train": ("train_torch", "train_pl")}) == \
        "part1.train.VAE.forward"
    assert function_id("part1", "cnn_encoder_decoder.py", "CNNEncoder.forward", {}) == \
        "part1.cnn_encoder_decoder.CNNEncoder"
    assert static_uses("import torch as th\ny = th.distributions.Normal(0, 1)\n", "utils.py")
    assert not static_uses("class A:\n    distributions = 1\nA().distributions\n", "utils.py")


# ---------------------------------------------------------------------------- real grades (slow)
@pytest.mark.slow
def test_reference_gets_full_marks_train_torch(tmp_path: Path):
    results = grade(make_submission(tmp_path / "sub"), tmp_path / "r.json", *ONLY)
    got = by_id(results)
    assert set(QUICK) <= set(got), f"checks not graded: {sorted(set(QUICK) - set(got))}"
    assert_full_marks(results, "reference (train_torch.py)")
    assert "graded train_torch.py" in got["part1.vae.forward.losses"]["output"]


@pytest.mark.slow
def test_reference_gets_full_marks_through_lightning(tmp_path: Path):
    """train_torch.py is the untouched handout, train_pl.py the reference: the Lightning path is graded."""
    sub = make_submission(tmp_path / "sub")
    shutil.copyfile(STUDENT / "part1" / "train_torch.py", sub / "part1" / "train_torch.py")
    results = grade(sub, tmp_path / "r.json", *ONLY)
    assert_full_marks(results, "reference (train_pl.py, handout train_torch.py)")
    assert "train_pl.py (Lightning) was graded" in by_id(results)["part1.vae.forward.losses"]["output"]


@pytest.mark.slow
def test_lightning_only_submission_gets_full_marks(tmp_path: Path):
    """A submission without train_torch.py at all (the instructor's handout copy is used) and the reference train_pl.py."""
    sub = make_submission(tmp_path / "sub")
    (sub / "part1" / "train_torch.py").unlink()
    results = grade(sub, tmp_path / "r.json", "--profile", "quick", "--only", "part1.train.*")
    assert_full_marks(results, "Lightning-only submission")


@pytest.mark.slow
def test_handout_gets_zero_with_one_clear_line_per_check(tmp_path: Path):
    results = grade(STUDENT, tmp_path / "r.json", "--only", "part1.vae.*", "--only", "part1.manifold.*",
                    "--only", "part1.no_torch_distributions")
    assert_handout_zero(results, MINE, ("not implemented yet", "None of the part 1 functions ran"))


@pytest.mark.slow
def test_smoke_trainings_pass_on_the_reference(tmp_path: Path):
    results = grade(make_submission(tmp_path / "sub"), tmp_path / "r.json", "--only", "part1.*.smoke.*")
    got = by_id(results)
    assert set(SMOKE) <= set(got)
    assert_full_marks(results, "reference smoke trainings")
    board = {e["name"]: e["value"] for e in results.get("leaderboard", [])}
    assert 1.0 < board["VAE test bpd (smoke training)"] < 3.0, board


@pytest.mark.slow
def test_smoke_training_fails_with_a_broken_forward_not_a_broken_kld(tmp_path: Path):
    """The smoke training grades VAE.forward: L_rec averaged over the pixels fails it; a KLD with its
    sign flipped does not (the grader's KLD stands in; KLD's own checks catch it)."""
    from tests.support import Edit

    forward = Edit("part1", "train_torch.py", 'reduction="none").flatten(1).sum(dim=1)', 'reduction="none").flatten(1).mean(dim=1)')
    kld = Edit("part1", "utils.py", "return 0.5 * per_dim.sum(dim=-1)", "return -0.5 * per_dim.sum(dim=-1)")
    results = grade(make_submission(tmp_path / "sub", [forward]), tmp_path / "r.json", "--only", "part1.vae.smoke.*")
    t = by_id(results)["part1.vae.smoke.bpd"]
    assert t["score"] == 0 and "test bpd" in t["output"], t["output"]
    results = grade(make_submission(tmp_path / "sub2", [kld]), tmp_path / "r2.json", "--only", "part1.vae.smoke.*")
    t = by_id(results)["part1.vae.smoke.bpd"]
    assert t["score"] == t["max_score"] and "utils.KLD" in t["output"], t["output"]


@pytest.mark.slow
@pytest.mark.parametrize("group", MUTANT_GROUPS, ids=group_id)
def test_mutants_lose_points_on_their_functions_only(tmp_path: Path, group):
    """Each mutant loses points on its own function's checks and names its mistake; graded in
    groups of independent functions (one mistake, one deduction keeps their verdicts apart)."""
    results = grade(make_submission(tmp_path / "sub", [e for m in group for e in m.edits]), tmp_path / "r.json", *ONLY)
    assert_mutants_caught(results, group)


@pytest.mark.slow
@pytest.mark.parametrize("group", VARIANT_GROUPS, ids=group_id)
def test_variants_get_full_marks(tmp_path: Path, group):
    results = grade(make_submission(tmp_path / "sub", [e for v in group for e in v.edits]), tmp_path / "r.json", *ONLY)
    assert_full_marks(results, group_id(group))


@pytest.mark.slow
def test_torch_distributions_is_reported_statically_and_at_run_time(tmp_path: Path):
    """A sampler through torch.distributions, hidden from the static scan (getattr with a built name),
    is still caught at run time; the check names the file and line, and only that check loses points."""
    from tests.support import Edit

    edit = Edit("part1", "utils.py", "    eps = torch.randn_like(std)\n    z = mean + std * eps\n",
                "    dists = getattr(torch, 'distri' + 'butions')\n    z = dists.Normal(mean, std).rsample()\n")
    edit_static = Edit("part1", "estimators.py", "import math\n", "import math\nimport torch.distributions as D  # unused\n")
    results = grade(make_submission(tmp_path / "sub", [edit, edit_static]), tmp_path / "r.json", "--profile", "quick",
                    "--only", "part1.no_torch_distributions")
    t = by_id(results)["part1.no_torch_distributions"]
    assert t["score"] == 0
    assert "(in sample_reparameterize): torch.distributions.Normal(...) created at run time" in t["output"], t["output"]
    # tagged with the functions that hold a forbidden use: the sampler, and every function of the
    # file that imports it at its top
    assert "part1.utils.sample_reparameterize" in t["tags"] and "part1.estimators.log_mean_exp" in t["tags"], t["tags"]
    assert "part1.utils.KLD" not in t["tags"], t["tags"]
    assert "estimators.py, line" in t["output"], t["output"]
