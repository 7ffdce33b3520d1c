"""Public tests for part 4 (IFT6135 HW3 problems 2 and 3). Run from this folder's parent with

    pytest part4/test_public.py

A test of a function you have not written yet is SKIPPED (with the reason), not failed. The
grader checks more (per-example interpolation weights, gradients, short trainings).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import q2_model  # noqa: E402
import q2_solution  # noqa: E402
import q3_model  # noqa: E402
import q3_solution  # noqa: E402


def call(function, *args, **kwargs):
    """Call a student function; skip the test if it still raises NotImplementedError."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        pytest.skip(f"{getattr(function, '__name__', function)} not implemented yet ({error})")


class Linear(nn.Module):
    """f(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.reshape(len(x), -1) @ self.w[:, None]


@pytest.mark.parametrize("shape", [(2,), (3, 8, 8)])
@pytest.mark.parametrize("slope", [0.5, 3.0])
def test_lp_reg_of_a_linear_critic(shape, slope):
    w = torch.randn(int(torch.tensor(shape).prod()))
    critic = Linear(w / w.norm() * slope)
    x, y = torch.randn(32, *shape), torch.randn(32, *shape) + 1
    penalty = call(q2_solution.lp_reg, x, y, critic)
    assert penalty.numel() == 1
    assert abs(float(penalty) - max(0.0, slope - 1) ** 2) < 1e-4


def test_lp_reg_reaches_the_critic():
    """The penalty is part of the critic's loss: its gradient must reach the critic's weights."""
    critic = Linear(torch.tensor([3.0, 0.0]))  # slope 3: penalty (3 - 1)^2 = 4, d/dw = 2 (3 - 1) w / 3
    call(q2_solution.lp_reg, torch.randn(64, 2), torch.randn(64, 2), critic).reshape(-1)[0].backward()
    assert critic.w.grad is not None
    torch.testing.assert_close(critic.w.grad, torch.tensor([4.0, 0.0]))


def test_the_given_critic_runs():
    assert q2_model.Critic(2)(torch.randn(4, 2)).shape == (4, 1)


def test_vf_wasserstein_distance_is_a_difference_of_means():
    critic = Linear(torch.tensor([1.0, 0.0]))
    p, q = torch.randn(100, 2) + torch.tensor([2.0, 0.0]), torch.randn(100, 2)
    d = float(call(q2_solution.vf_wasserstein_distance, p, q, critic).reshape(-1)[0])
    assert abs(abs(d) - abs(float(p[:, 0].mean() - q[:, 0].mean()))) < 1e-5


def test_cosine_similarity():
    x1, x2 = torch.randn(5, 7), torch.randn(5, 7)
    got = call(q3_solution.CosineSimilarity(), x1, x2)
    torch.testing.assert_close(got.reshape(-1), nn.functional.cosine_similarity(x1, x2, dim=1))


@pytest.mark.parametrize("stop", [True, False])
def test_simsiam_forward_and_stop_gradient(stop):
    model = q3_solution.SimSiam(q3_model.mlp_encoder, dim=16, pred_dim=4, stop_gradient=stop)
    x = torch.rand(8, 1, 28, 28)
    p1, p2, z1, z2 = call(model, q3_model.augment(x), q3_model.augment(x))
    assert p1.shape == z1.shape == (8, 16)
    assert p1.requires_grad and p2.requires_grad
    assert z1.requires_grad == z2.requires_grad == (not stop)


def test_simsiam_loss_of_identical_views_is_minus_one():
    model = q3_solution.SimSiam(q3_model.mlp_encoder, dim=16, pred_dim=4)
    z = torch.randn(8, 16)
    loss = call(model.loss, z, z, z, z, q3_solution.CosineSimilarity())
    assert abs(float(loss) + 1) < 1e-5
