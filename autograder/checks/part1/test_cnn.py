"""Checks of part1/cnn_encoder_decoder.py: ``CNNEncoder`` and ``CNNDecoder`` (Q1.8).

Any architecture is accepted as long as it meets the interface: the checks build the
student's modules in the worker for several ``z_dim``/``num_filters`` and batch sizes
and judge only shapes, dtypes, the decoder's raw logits, determinism in eval mode,
dependence on the input, and that every parameter receives gradient.
"""
from __future__ import annotations

from typing import Any

import torch

from autograder.checks.part1 import mistakes
from autograder.checks.part1.helpers_funcs import describe, preview, require_tensor
from autograder.registry import check, fail, tags

ENCODER = "part1.cnn_encoder_decoder.CNNEncoder"
DECODER = "part1.cnn_encoder_decoder.CNNDecoder"
DRIVERS = "drivers_part1_funcs"

# (constructor keyword arguments, the z_dim they mean); {} checks the defaults (z_dim 20, 32 filters).
# num_filters stay multiples of 16 so that normalisation layers with groups (GroupNorm) still fit.
CONFIGS: list[tuple[dict[str, int], int]] = [
    ({"num_filters": 16, "z_dim": 2}, 2),
    ({}, 20),
    ({"num_filters": 64, "z_dim": 32}, 32),
]
BATCHES = (1, 5)


def images(batch: int, seed: int) -> torch.Tensor:
    """Random 4-bit images: long [B, 1, 28, 28] in [0, 15], as the data pipeline produces."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 16, (batch, 1, 28, 28), generator=g)


def latents(batch: int, z_dim: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, z_dim, generator=g) * scale


def _ctor(name: str, kwargs: dict[str, int]) -> str:
    return f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"


def _encode(part1: Any, enc: Any, x: torch.Tensor, call: str, z_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    out = part1.method(enc, "forward", x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{call} returned {describe(out)}; expected a tuple (mean, log_std)")
    b = x.shape[0]
    mean = require_tensor(out[0], call + " -> mean", (b, z_dim))
    log_std = require_tensor(out[1], call + " -> log_std", (b, z_dim))
    return mean, log_std


@check("part1.cnn_encoder_decoder.CNNEncoder.shapes")
@tags(ENCODER)
def test_encoder_shapes(part1):
    """forward(long [B, 1, 28, 28]) returns (mean, log_std), each float [B, z_dim], for several z_dim,
    num_filters and B; the outputs depend on the image, mean and log_std are distinct outputs, and
    eval mode is deterministic."""
    for kwargs, z_dim in CONFIGS:
        ctor = _ctor("CNNEncoder", kwargs)
        enc = part1.call("cnn_encoder_decoder.CNNEncoder", **kwargs)
        for b in BATCHES:
            x = images(b, seed=b)
            call = f"{ctor}.forward(x) for x a long tensor [{b}, 1, 28, 28] with values in [0, 15]"
            mean, log_std = _encode(part1, enc, x, call, z_dim)
        if torch.equal(mean[0], mean[1]) and torch.equal(log_std[0], log_std[1]):
            fail(f"{call}: two different images got the same mean and log_std ({preview(mean[0])}); "
                 "the encoder's output must depend on its input")
        if torch.equal(mean, log_std):
            fail(f"{call}: mean and log_std are the same tensor ({preview(mean)}); the encoder must predict them "
                 "separately (e.g. 2*z_dim outputs split in two, or two heads)",
                 "mean and log_std taken from the same output")
        part1.method(enc, "eval")
        first = _encode(part1, enc, x, call + " in eval mode", z_dim)
        again = _encode(part1, enc, x, call + " in eval mode, again", z_dim)
        if not (torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])):
            fail(f"{call}: in eval mode, two forward passes of the same images gave different outputs "
                 f"({preview(first[0])} then {preview(again[0])})",
                 "layers created (with fresh random weights) inside forward() instead of in __init__")


@check("part1.cnn_encoder_decoder.CNNDecoder.shapes")
@tags(DECODER)
def test_decoder_shapes(part1):
    """forward(float [B, z_dim]) returns float logits [B, 16, 28, 28] for several z_dim, num_filters and B;
    the output depends on z, eval mode is deterministic, and the ``device`` property names the parameters' device."""
    for kwargs, z_dim in CONFIGS:
        ctor = _ctor("CNNDecoder", kwargs)
        dec = part1.call("cnn_encoder_decoder.CNNDecoder", **kwargs)
        for b in BATCHES:
            z = latents(b, z_dim, seed=b)
            call = f"{ctor}.forward(z) for z a float tensor [{b}, {z_dim}]"
            out = require_tensor(part1.method(dec, "forward", z), call, (b, 16, 28, 28))
        if torch.equal(out[0], out[1]):
            fail(f"{call}: two different latents gave the same logits; the decoder's output must depend on z")
        part1.method(dec, "eval")
        first = require_tensor(part1.method(dec, "forward", z), call + " in eval mode", (b, 16, 28, 28))
        again = require_tensor(part1.method(dec, "forward", z), call + " in eval mode, again", (b, 16, 28, 28))
        if not torch.equal(first, again):
            fail(f"{call}: in eval mode, two forward passes of the same z gave different logits",
                 "layers created (with fresh random weights) inside forward() instead of in __init__")
        device = part1.getattr(dec, "device")
        if str(device) != "cpu":
            fail(f"{ctor}.device is {describe(device)}; expected torch.device('cpu') for a decoder whose parameters "
                 "are on the CPU")


def fit_target() -> torch.Tensor:
    """The 4-bit image the decoder-alone fit aims at: every level 0..15 in bands, long [28, 28]."""
    i = torch.arange(28).view(-1, 1)
    j = torch.arange(28).view(1, -1)
    return ((i + 2 * j) // 5) % 16


@check("part1.cnn_encoder_decoder.CNNDecoder.logits")
@tags(DECODER)
def test_decoder_logits(part1, threshold):
    """The decoder returns unnormalised logits that can express any pixel distribution.

    - its outputs are not all inside [0, 1] (for z of scale 1 and 10): not probabilities
      (log-softmax outputs are valid logits and are accepted);
    - they are finite;
    - a short fit of the decoder alone (``part1.functions.decoder_fit``: Adam, every latent of
      a batch to one fixed 4-bit image) brings the per-pixel cross-entropy below
      ``max_ce``: a decoder whose outputs are squashed (tanh, sigmoid, a softmax) cannot make
      a level likely (tanh bounds the best probability at 0.33, a cross-entropy of 1.11).
      Calibration next to the threshold in grading.toml.
    """
    dec = part1.call("cnn_encoder_decoder.CNNDecoder", z_dim=20)
    outs = []
    for scale in (1.0, 10.0):
        z = latents(8, 20, seed=3, scale=scale)
        call = f"CNNDecoder(z_dim=20).forward(z) for z ~ N(0, {scale:g}^2) of shape [8, 20]"
        outs.append((call, require_tensor(part1.method(dec, "forward", z), call, (8, 16, 28, 28))))
    for call, o in outs:
        if not bool(torch.isfinite(o).all()):
            fail(f"{call}: {int((~torch.isfinite(o)).sum())} of {o.numel()} outputs are not finite (inf/nan); "
                 "expected finite logits")
    if all(bool(((o >= 0) & (o <= 1)).all()) for _, o in outs):
        call, o = outs[0]
        sums = o.double().sum(1)
        fail(f"{call}: every output lies in [0, 1] (min {o.min().item():.4g}, max {o.max().item():.4g}; sums over the "
             f"16 values of a pixel from {sums.min().item():.4g} to {sums.max().item():.4g}); expected raw logits",
             mistakes.diagnose_output(DECODER, o))
    s = threshold("part1.functions.decoder_fit")
    steps, lr, max_ce = int(s["steps"]), float(s["lr"]), float(s["max_ce"])
    fresh = part1.call("cnn_encoder_decoder.CNNDecoder", num_filters=16, z_dim=8)
    z = latents(8, 8, seed=5)
    r = part1.driver(f"{DRIVERS}.decoder_fit", fresh, z, fit_target(), steps, lr)
    losses = [float(v) for v in r.get("losses", [])]
    call = (f"CNNDecoder(num_filters=16, z_dim=8) fitted alone for {steps} Adam steps (lr {lr:g}) so that 8 latents "
            "all decode to one fixed 4-bit image")
    if not losses or losses[-1] != losses[-1]:
        fail(f"{call}: the cross-entropy became nan; expected finite logits throughout")
    if losses[-1] > max_ce:
        squashed = r.get("logit_span", float("inf")) <= 3.0
        fail(f"{call}: the per-pixel cross-entropy went from {losses[0]:.3f} to {losses[-1]:.3f} nats; expected below "
             f"{max_ce:g} (the reference's decoder reaches about {float(s['reference_ce']):.2f}); its logits span only "
             f"{r.get('logit_span', float('nan')):.3g} at the end",
             "the decoder's output is squashed (tanh, sigmoid or a softmax on the logits), so no pixel level can become "
             "likely" if squashed else None)


def _gradient_report(part1: Any, module: Any, inputs: list[torch.Tensor], call: str) -> dict[str, Any]:
    r = part1.driver(f"{DRIVERS}.module_gradients", module, inputs)
    if not r["trainable"]:
        fail(f"{call}: the module has no trainable parameters (layers must be nn.Module attributes set in __init__)")
    if not r["output_requires_grad"]:
        fail(f"{call}: the output does not require grad, so no parameter can learn",
             "no gradient: the output is cut from the graph (torch.no_grad(), .detach() or .data in forward)")
    missing = r["no_grad"] + r["zero_grad"]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        fail(f"{call}: {len(missing)} of {len(r['trainable'])} parameter tensors got no gradient from the output: "
             f"{shown}",
             "part of the network is cut from the graph (.detach()/.data/torch.no_grad() in forward) "
             "or a layer is defined but never used")
    return r


@check("part1.cnn_encoder_decoder.CNNEncoder.gradients")
@tags(ENCODER)
def test_encoder_gradients(part1):
    """Backpropagating a random linear function of (mean, log_std) gives every parameter a nonzero gradient."""
    enc = part1.call("cnn_encoder_decoder.CNNEncoder", z_dim=20)
    _gradient_report(part1, enc, [images(4, seed=7)],
                     "CNNEncoder(z_dim=20): backward of a random weighting of forward(x) for x long [4, 1, 28, 28]")


@check("part1.cnn_encoder_decoder.CNNDecoder.gradients")
@tags(DECODER)
def test_decoder_gradients(part1):
    """Backpropagating a random linear function of the logits gives every parameter, and z, a nonzero gradient."""
    dec = part1.call("cnn_encoder_decoder.CNNDecoder", z_dim=20)
    call = "CNNDecoder(z_dim=20): backward of a random weighting of forward(z) for z float [4, 20]"
    r = _gradient_report(part1, dec, [latents(4, 20, seed=7)], call)
    if not all(r["input_grad"]):
        fail(f"{call}: no gradient reached z, so the encoder could not learn through the decoder",
             "z cut from the graph (.detach()/.data/torch.no_grad() on z in forward)")
