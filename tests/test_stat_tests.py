"""The grader's own statistics (autograder/checks/part1/stat_tests.py) against scipy.stats.

The grading process computes these in torch so that it need not import scipy.stats (~37 MB of
the 768 MB container); the checks' thresholds were calibrated with scipy's numbers, so these
tests pin that the numbers are scipy's.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from autograder.checks.part1 import stat_tests as S
from tests.support import ROOT


def test_normal_quantile_is_norm_ppf_for_arrays_and_tensors():
    p = np.concatenate([[0.0, 1e-12, 1e-4], np.linspace(0.01, 0.99, 97), [1 - 1e-4, 1.0]])
    got = S.normal_quantile(p)
    want = stats.norm.ppf(p)
    assert isinstance(got, np.ndarray) and got[0] == -np.inf and got[-1] == np.inf
    np.testing.assert_allclose(got[1:-1], want[1:-1], rtol=1e-13, atol=1e-13)
    as_tensor = S.normal_quantile(torch.as_tensor(p[1:-1]))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float64
    np.testing.assert_allclose(as_tensor.numpy(), want[1:-1], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("seed", range(6))
def test_chi_square_pvalue_is_scipys(seed: int):
    g = torch.Generator().manual_seed(seed)
    cells = 3 + seed * 2
    observed = torch.randint(0, 60, (cells,), generator=g).double()
    weights = torch.rand(cells, generator=g, dtype=torch.float64) + 0.1
    expected = weights / weights.sum() * observed.sum()
    expected[-1] = observed.sum() - expected[:-1].sum()  # scipy insists on equal totals
    want = stats.chisquare(observed.numpy(), expected.numpy()).pvalue
    assert S.chi_square_pvalue(observed, expected) == pytest.approx(want, rel=1e-10, abs=1e-300)


def test_chi_square_of_one_cell_is_no_evidence():
    assert S.chi_square_pvalue(torch.tensor([5.0]), torch.tensor([5.0])) == 1.0


@pytest.mark.parametrize("n", [5, 64, 1280, 10000, 10001, 20000])
def test_ks_pvalue_is_scipys_up_to_the_both_tails_term(n: int):
    """The two one-sided tails overcount P(both one-sided statistics >= D) < p**2 / 2: a large
    difference at p ~ 0.5, nothing at the checks' alpha of 1e-4 (the last assertion)."""
    for seed in range(4):
        for shift in (0.0, 0.03, 0.1, 0.5):
            g = torch.Generator().manual_seed(1000 * seed + n)
            x = torch.randn(n, generator=g, dtype=torch.float64) * (1 + shift) + shift
            got, want = S.ks_normal_pvalue(x), float(stats.kstest(x.numpy(), "norm").pvalue)
            assert abs(got - want) <= want * want / 2 + 1e-4 * want, (seed, shift, got, want)
            if want < 1e-2:
                assert got == pytest.approx(want, rel=1e-2), (seed, shift)


def test_ks_pvalue_rejects_what_the_checks_must_reject():
    g = torch.Generator().manual_seed(0)
    assert S.ks_normal_pvalue(torch.rand(20000, generator=g)) < 1e-100  # uniform noise instead of normal
    assert S.ks_normal_pvalue(2 * torch.randn(1280, generator=g)) < 1e-4  # std doubled
    assert S.ks_normal_pvalue(torch.randn(1280, generator=g)) > 1e-4
    assert S.ks_normal_pvalue(torch.tensor([0.0, float("nan")])) == 0.0
    assert S.ks_normal_pvalue(torch.zeros(0)) == 0.0


def test_smirnov_tail_at_its_edges():
    assert S.smirnov_sf(10, 0.0) == 1.0 and S.smirnov_sf(10, 1.0) == 0.0
    # P(D+_1 >= d) = 1 - d for one value.
    assert S.smirnov_sf(1, 0.3) == pytest.approx(0.7, rel=1e-12)
    assert S.smirnov_sf(50, 0.2) == pytest.approx(stats.ksone.sf(0.2, 50), rel=1e-10)


def test_the_part1_checks_do_not_import_scipy():
    """The point of this module: the grading process stays ~37 MB lighter."""
    code = ("import sys; import autograder.checks.part1.vae_support, autograder.checks.part1.mistakes; "
            "print('scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
