"""The part-1 function checks (Q1.7 utils, Q1.8 CNN, Q1.11 estimators) on known submissions.

- the reference gets full marks on every one of them;
- the untouched handout gets 0 on each, with one clear NotImplementedError line and no grader error;
- every mutant of tests/mutants_part1_functions.py loses points on a check tagged with the
  mutated function, on no check of another function, and names its mistake where listed;
- every variant (a correct implementation written differently) gets full marks.

Each case is one real grade through ``python -m autograder grade`` (profile ``quick``, part 1
only), i.e. what a student would see. About 12 s per grade on this machine.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from autograder import config
from tests.mutants_part1_functions import MUTANTS, VARIANTS
from tests.support import (STUDENT, assert_full_marks, assert_handout_zero, assert_mutants_caught, by_id, grade,
                           group_id, independent_groups, make_submission)

MUTANT_GROUPS = independent_groups(MUTANTS)
VARIANT_GROUPS = independent_groups(VARIANTS)

pytestmark = pytest.mark.slow

ONLY = ("--profile", "quick", "--only", "part1.*")
PREFIXES = ("part1.utils.sample_reparameterize.", "part1.utils.KLD.", "part1.utils.elbo_to_bpd.",
            "part1.cnn_encoder_decoder.", "part1.estimators.")
MINE = sorted(cid for cid in config.load().checks if cid.startswith(PREFIXES))


def test_the_function_checks_are_configured():
    """Every function check is numbered under its question and worth points (the split is the config's)."""
    assert len(MINE) >= 20, MINE
    cfg = config.load()
    expected_question = {"part1.utils.": "1.7", "part1.cnn_encoder_decoder.": "1.8", "part1.estimators.": "1.11"}
    for cid in MINE:
        q = next(v for k, v in expected_question.items() if cid.startswith(k))
        assert cfg.checks[cid].question == q and cfg.checks[cid].weight > 0, (cid, cfg.checks[cid])


def test_mutant_and_variant_ids_are_unique():
    ids = [m.id for m in MUTANTS] + [v.id for v in VARIANTS]
    assert len(ids) == len(set(ids))
    assert len(MUTANTS) >= 18 and len(VARIANTS) >= 8


def test_reference_gets_full_marks(tmp_path: Path):
    results = grade(make_submission(tmp_path / "sub"), tmp_path / "r.json", *ONLY)
    got = by_id(results)
    assert set(MINE) <= set(got), f"checks not graded: {sorted(set(MINE) - set(got))}"
    assert_full_marks(results, "reference")


def test_handout_gets_zero_with_one_clear_line_per_check(tmp_path: Path):
    results = grade(STUDENT, tmp_path / "r.json", *ONLY)
    assert_handout_zero(results, MINE, ("not implemented yet",))


@pytest.mark.parametrize("group", MUTANT_GROUPS, ids=group_id)
def test_mutants_lose_points_on_their_functions_only(tmp_path: Path, group):
    """Each mutant loses points on its own function's checks and names its mistake; graded in
    groups of independent functions (one mistake, one deduction keeps their verdicts apart)."""
    results = grade(make_submission(tmp_path / "sub", [e for m in group for e in m.edits]), tmp_path / "r.json", *ONLY)
    assert_mutants_caught(results, group)


@pytest.mark.parametrize("group", VARIANT_GROUPS, ids=group_id)
def test_variants_get_full_marks(tmp_path: Path, group):
    results = grade(make_submission(tmp_path / "sub", [e for v in group for e in v.edits]), tmp_path / "r.json", *ONLY)
    assert_full_marks(results, group_id(group))
