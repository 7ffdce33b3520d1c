"""Checks of the fake assignment: small, but through the real engine."""
import torch
from hypothesis import given, strategies as st

from autograder.registry import check, fail, tags


@check("fake.add.values")
@tags("part1.mathops.add")
def test_add(part1, ref1, threshold):
    a, b = torch.arange(6.0).reshape(2, 3), torch.full((2, 3), 0.5)
    got = part1.call("mathops.add", a, b)
    want = ref1("mathops").add(a, b)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        fail(f"add(a, b) for a, b of shape [2, 3] returned {type(got).__name__} "
             f"{getattr(got, 'shape', '')}; expected a tensor of shape [2, 3]")
    if not torch.allclose(got, want, atol=threshold("fake.atol")):
        fail(f"add(a, b) returned {got.tolist()}; expected {want.tolist()}")


@check("fake.scale.values")
@tags("part1.mathops.scale")
def test_scale(part1, ref1):
    x = torch.ones(4)
    got = part1.call("mathops.scale", x, 3.0)
    if not torch.equal(got, ref1("mathops").scale(x, 3.0)):
        fail(f"scale(ones(4), 3.0) returned {got.tolist()}; expected [3, 3, 3, 3]")


@check("fake.add.commutes")
@tags("part1.mathops.add")
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=5))
def test_add_commutes(part1, xs):
    a = torch.tensor(xs)
    b = a.flip(0)
    if not torch.equal(part1.call("mathops.add", a, b), part1.call("mathops.add", b, a)):
        fail(f"add(a, b) != add(b, a) for a = {xs}")


@check("fake.ones.shape")
@tags("part1.shapes.ones")
def test_ones(part1):
    got = part1.call("shapes.ones", 5)
    if tuple(got.shape) != (5,):
        fail(f"ones(5) has shape {tuple(got.shape)}; expected (5,)")


@check("fake.shout.values")
@tags("part2.words.shout")
def test_shout(part2, ref2):
    if part2.call("words.shout", "hello") != ref2("words").shout("hello"):
        fail("shout('hello') should be 'HELLO'")
