"""Public tests for part 2 (adversarial attacks). Run from the part2 folder's parent with

    pytest part2/test_public.py          (or: cd part2 && pytest test_public.py)

A test of a function you have not written yet is SKIPPED (with the reason), not failed.
Passing these tests does not guarantee full marks: the grader checks more inputs and
trains your defences on real data.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

# Import this folder's modules even when pytest runs from elsewhere or part1 (which also
# has a utils.py) was imported first in the same session.
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
for _name in ("globals", "models", "data", "utils", "adversarial_attack", "train"):
    _module = sys.modules.get(_name)
    if _module is not None and Path(getattr(_module, "__file__", "") or "").resolve().parent != HERE:
        del sys.modules[_name]

from adversarial_attack import fgsm_attack, fgsm_loss, pgd_attack  # noqa: E402
# Renamed so that pytest does not collect the student's function as a test.
from adversarial_attack import test_attack as attack_and_measure  # noqa: E402
from globals import ALPHA, EPSILON, FGSM, NUM_ITER, PGD  # noqa: E402
from models import SmallNet, get_model  # noqa: E402
from utils import train  # noqa: E402


def call(function, *args, **kwargs):
    """Call a student function; skip the test if it still raises NotImplementedError."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        pytest.skip(f"{function.__name__} not implemented yet ({error})")


def tiny_model(seed: int = 0) -> nn.Module:
    """A fixed random linear classifier on 1x28x28 images (fast, deterministic)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def batch(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def linf(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------- fgsm_attack
def test_fgsm_attack_moves_each_pixel_by_epsilon_along_the_sign():
    image = torch.full((2, 1, 4, 4), 0.5)
    grad = torch.randn(2, 1, 4, 4)
    out = call(fgsm_attack, image, grad, 0.1)
    assert out.shape == image.shape
    torch.testing.assert_close(out, 0.5 + 0.1 * grad.sign())


def test_fgsm_attack_stays_in_ball_and_valid_range():
    image, _ = batch()
    grad = torch.randn_like(image)
    out = call(fgsm_attack, image, grad, 0.3)
    assert linf(out, image) <= 0.3 + 1e-6
    assert out.min() >= 0 and out.max() <= 1


def test_fgsm_attack_zero_gradient_keeps_image():
    image, _ = batch()
    out = call(fgsm_attack, image, torch.zeros_like(image), 0.2)
    torch.testing.assert_close(out, image)


# ----------------------------------------------------------------------------- fgsm_loss
def test_fgsm_loss_return_forms():
    model, criterion = tiny_model(), nn.CrossEntropyLoss()
    x, y = batch()
    args = {ALPHA: 0.5, EPSILON: 0.1}
    loss, preds = call(fgsm_loss, model, criterion, x, y, args, return_preds=True)
    assert loss.dim() == 0 and loss.requires_grad
    assert preds.shape == y.shape and preds.dtype == torch.long
    torch.testing.assert_close(preds, model(x).argmax(1))
    only = call(fgsm_loss, model, criterion, x, y, args, return_preds=False)
    assert torch.is_tensor(only) and only.dim() == 0


def test_fgsm_loss_alpha_one_is_the_clean_loss_and_inputs_untouched():
    model, criterion = tiny_model(), nn.CrossEntropyLoss()
    x, y = batch()
    x_copy = x.clone()
    loss, _ = call(fgsm_loss, model, criterion, x, y, {ALPHA: 1.0, EPSILON: 0.1})
    torch.testing.assert_close(loss, criterion(model(x_copy), y))
    torch.testing.assert_close(x, x_copy)


def test_fgsm_loss_backward_treats_adversarial_input_as_constant():
    model, criterion = tiny_model(), nn.CrossEntropyLoss()
    x, y = batch()
    alpha, eps = 0.3, 0.1
    loss, _ = call(fgsm_loss, model, criterion, x, y, {ALPHA: alpha, EPSILON: eps})
    model.zero_grad()
    loss.backward()
    got = [p.grad.clone() for p in model.parameters()]

    x_req = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(criterion(model(x_req), y), x_req)
    x_adv = (x + eps * g.sign()).clamp(0, 1).detach()
    model.zero_grad()
    (alpha * criterion(model(x), y) + (1 - alpha) * criterion(model(x_adv), y)).backward()
    for mine, expected in zip(got, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- pgd_attack
@pytest.mark.parametrize("eps,alpha,num_iter", [(0.1, 0.025, 10), (0.05, 0.1, 3), (0.3, 0.01, 5)])
def test_pgd_attack_inside_ball_and_valid_range(eps, alpha, num_iter):
    model, criterion = tiny_model(), nn.CrossEntropyLoss()
    x, y = batch()
    x_copy = x.clone()
    out = call(pgd_attack, model, x, y, criterion, {ALPHA: alpha, EPSILON: eps, NUM_ITER: num_iter})
    assert out.shape == x.shape and not out.requires_grad
    assert linf(out, x) <= eps + 1e-6, "left the epsilon-ball around the original data"
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(x, x_copy, msg="pgd_attack modified its input")


def test_pgd_attack_increases_the_loss():
    model, criterion = tiny_model(), nn.CrossEntropyLoss()
    x, y = batch()
    out = call(pgd_attack, model, x, y, criterion, {ALPHA: 0.01, EPSILON: 0.05, NUM_ITER: 5})
    with torch.no_grad():
        assert criterion(model(out), y) > criterion(model(x), y)


def test_pgd_attack_leaves_parameter_gradients_alone():
    model, criterion = tiny_model(), nn.CrossEntropyLoss()
    x, y = batch()
    call(pgd_attack, model, x, y, criterion, {ALPHA: 0.01, EPSILON: 0.05, NUM_ITER: 3})
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.parameters())


# ----------------------------------------------------------------------------- test_attack
def loader_of(n: int = 64, batch_size: int = 16):
    x, y = batch(n, seed=3)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


@pytest.mark.parametrize("attack,args", [(FGSM, {ALPHA: 0.5, EPSILON: 0.1}),
                                         (PGD, {ALPHA: 0.025, EPSILON: 0.1, NUM_ITER: 5})])
def test_test_attack_return_forms(attack, args):
    model = tiny_model()
    loader = loader_of()
    clean = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader) / 64
    accuracy, examples = call(attack_and_measure, model, loader, attack, args)
    assert isinstance(accuracy, float) and 0 <= accuracy <= clean + 1e-9
    assert isinstance(examples, list) and len(examples) <= 5


def test_test_attack_with_zero_epsilon_keeps_clean_accuracy():
    model = tiny_model()
    loader = loader_of()
    clean = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader) / 64
    accuracy, _ = call(attack_and_measure, model, loader, FGSM, {ALPHA: 0.5, EPSILON: 0.0})
    assert accuracy == pytest.approx(clean)


# ----------------------------------------------------------------------------- train (PGD defence)
def test_train_pgd_adds_adversarial_examples_to_the_batch():
    torch.manual_seed(0)
    model = SmallNet()
    sizes: list[int] = []
    model.register_forward_hook(lambda module, inputs, output: sizes.append(inputs[0].shape[0]))
    x, y = batch(8, seed=5)
    loader = [(x, y)]
    args = {ALPHA: 0.01, EPSILON: 0.05, NUM_ITER: 2}
    call(train, model, loader, loader, num_epochs=1, defense_strategy=PGD, defense_args=args)
    assert 16 in sizes, f"no forward pass on the clean + adversarial batch of 16; batch sizes seen: {sizes}"


# ----------------------------------------------------------------------------- instructor code
def test_models_take_images_in_unit_range():
    model = get_model("fashionmnist")
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
