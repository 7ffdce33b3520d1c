"""Part 3: attacks on the VAE's latent space, HMC and the beta-VAE (issue 15).

- the reference and a template-style student (tests/template_style/part3, every function
  written another way) get full marks, smoke checks included; the untouched handout scores 0
  with one line per check;
- each realistic mistake (tests/mutants_part3.py) costs its own function only and is named;
  each variant keeps full marks;
- the editions of the course's templates do not grade part 3.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from autograder import config
from tests import mutants_part3 as P
from tests.support import (ROOT, SOLUTIONS, STUDENT, assert_full_marks, assert_handout_zero, assert_mutants_caught,
                           by_id, declared_checks, grade, group_id, independent_groups, make_submission)

TEMPLATE = ROOT / "tests" / "template_style"
PART3_CHECKS = 16


def test_part3_is_this_handouts_own():
    own = config.load()
    chosen = [c for c in own.checks.values() if own.selected(c) and c.id.startswith("part3.")]
    assert len(chosen) == PART3_CHECKS and sum(c.weight for c in chosen) == 20
    assert {c.number.rsplit(".", 1)[0] for c in chosen} == {f"3.{k}" for k in range(1, 7)}
    for edition in ("uva2024", "uva2021", "ift6135", "ift6135_2020"):
        cfg = config.load(edition=edition)
        assert "part3" in cfg.dropped_parts, edition
        assert not any(cfg.selected(c) for c in cfg.checks.values() if c.id.startswith("part3.")), edition


@pytest.mark.slow
def test_the_reference_and_a_template_style_student_get_full_marks(tmp_path: Path):
    for name, base in (("reference", SOLUTIONS), ("template-style student", TEMPLATE)):
        sub = make_submission(tmp_path / name, base=base, parts=("part3",))
        results = grade(sub, tmp_path / f"{name}.json", "--only", "part3.*")
        assert_full_marks(results, name)
        assert len(results["tests"]) == PART3_CHECKS and results["score"] == 20


@pytest.mark.slow
def test_the_untouched_handout_scores_zero(tmp_path: Path):
    sub = make_submission(tmp_path / "h", base=STUDENT, parts=("part3",))
    results = grade(sub, tmp_path / "h.json", "--only", "part3.*")
    assert_handout_zero(results, [cid for cid in by_id(results)])
    assert len(results["tests"]) == PART3_CHECKS


VARIANT_GROUPS = independent_groups(P.VARIANTS)
MUTANT_GROUPS = independent_groups(P.MUTANTS)
# Mistakes only a training shows are graded with the smoke checks; the others with the quick profile.
SMOKE = {"loss_beta_on_reconstruction"}


# The functions a smoke training judges (3.5.2, 3.6.3): a smoke check runs the student's own
# version of its function only (the others are stand-ins), so a group without one of these
# needs no training to show full marks.
SMOKED = {d["grades"] for cid, d in declared_checks().items() if cid.startswith("part3.") and ".smoke." in cid}


@pytest.mark.slow
@pytest.mark.parametrize("group", VARIANT_GROUPS, ids=group_id)
def test_part3_variants_keep_full_marks(tmp_path: Path, group: list):
    sub = make_submission(tmp_path / "sub", [e for item in group for e in item.edits], parts=("part3",))
    profile = () if any(item.function in SMOKED for item in group) else ("--profile", "quick")
    assert_full_marks(grade(sub, tmp_path / "r.json", "--only", "part3.*", *profile), group_id(group))


@pytest.mark.slow
@pytest.mark.parametrize("group", MUTANT_GROUPS, ids=group_id)
def test_part3_bugs_cost_only_their_function(tmp_path: Path, group: list):
    sub = make_submission(tmp_path / "sub", [e for item in group for e in item.edits], parts=("part3",))
    profile = () if any(mu.id in SMOKE for mu in group) else ("--profile", "quick")
    assert_mutants_caught(grade(sub, tmp_path / "r.json", "--only", "part3.*", *profile), group)


@pytest.mark.slow
def test_the_smoke_checks_catch_what_only_they_can(tmp_path: Path):
    """A latent attack that starts at x never moves (zero gradient), one that descends lowers
    the SKL, a targeted attack that ascends moves away, HMC with a flipped log target drifts
    away from the posterior: each fails its own measurement, with the reason."""
    broken = {mu.id: mu for mu in P.MUTANTS}
    cases = [("att_starts_at_x", "part3.latent_attacks.latent_attack.strength", "started at x"),
             ("tgt_ascends", "part3.latent_attacks.targeted_latent_attack.success", "moves away"),
             ("def_sign_flipped", "part3.hmc.hmc_defence.smoke.recovery", "recovered")]
    edits = [e for name, _, _ in cases for e in broken[name].edits]
    sub = make_submission(tmp_path / "sub", edits, parts=("part3",))
    got = by_id(grade(sub, tmp_path / "r.json", "--only", "part3.*"))
    for name, cid, phrase in cases:
        assert got[cid]["score"] == 0, f"{name}: {got[cid]['output'][:400]}"
        assert phrase in got[cid]["output"], f"{name}: {got[cid]['output'][:400]}"


def test_the_grader_vae_is_trained_and_loads_without_code():
    """The shipped asset is a plain dict of tensors (weights_only) for the handout's models.VAE,
    and a trained one: its negative ELBO on test images is far below an untrained VAE's
    (784 ln 16 = 2174 nats per image), near tools/train_grader_vae.py's 970.6."""
    import torch

    from autograder.checks import reference
    from autograder.checks.part3 import helpers as H

    cfg = config.load()
    models = reference.load(cfg.reference_dir, "part3", "models")
    loss = reference.load(cfg.reference_dir, "part3", "beta_vae").beta_vae_loss
    vae = H.grader_vae(models)
    x, _ = H.images(reference.load(cfg.reference_dir, "part1", "data"), 256)
    torch.manual_seed(0)
    with torch.no_grad():
        mean, log_std = vae.encoder(x)
        value = float(loss(x, vae.decoder(mean + torch.exp(log_std) * torch.randn_like(mean)), mean, log_std, 1.0))
    assert 800 < value < 1100, value
    assert set(H.asset()) == {"z_dim", "hidden", "state"}
