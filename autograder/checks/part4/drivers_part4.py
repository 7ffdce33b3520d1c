"""Worker-side helpers of the IFT6135 problem 2 and 3 checks (run next to the student's code).

The grader sends plain tensors and gets plain tensors back; expectations are computed in the
grading process from what comes back (the inputs the critic saw, the returned value, the
gradients), never here: this module runs in the same process as student code.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from drivers_common import error_text, plain, resolve


# ----------------------------------------------------------------------------- problem 2
class RecordingCritic(nn.Module):
    """A critic whose input gradient is known, recording every batch it is called on.

    ``linear``: f(x) = <w, x> + b (gradient w everywhere). ``half_square``: f(x) = a * ||x||^2 / 2
    (gradient a * x). Outputs [B, 1] like an ``nn.Linear`` critic.
    """

    def __init__(self, kind: str, weight: torch.Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(weight.clone().float())
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().cpu().clone())
        flat = x.reshape(x.shape[0], -1)
        if self.kind == "linear":
            out = flat @ self.weight.reshape(-1) + self.bias
        else:
            out = self.weight.reshape(()) * 0.5 * (flat ** 2).sum(1) + self.bias
        return out[:, None]


def _inputs(x: torch.Tensor, y: torch.Tensor, x_requires_grad: bool, y_from_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x as a leaf that requires grad (a discriminator's input) or not; y as the output of a
    'generator' (a non-leaf with history, like G(z)) or a plain tensor."""
    x = x.clone().requires_grad_(x_requires_grad)
    if y_from_graph:
        source = y.clone().requires_grad_(True)
        y = source * 1.0
    return x, y


def critic_probe(function: str, kind: str, weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 x_requires_grad: bool = False, y_from_graph: bool = False) -> dict[str, Any]:
    """Call ``q2_solution.<function>(a, b, critic)`` with a :class:`RecordingCritic`, then
    back-propagate the result: its value, the batches the critic saw and the gradient on the
    critic's weight (None: the result does not depend on it)."""
    critic = RecordingCritic(kind, weight)
    a, b = _inputs(a, b, x_requires_grad, y_from_graph)
    try:
        out = resolve(f"q2_solution.{function}")(a, b, critic)
    except Exception as exc:  # the message goes to the student
        return {"error": error_text(exc)}
    result: dict[str, Any] = {"out": plain(out), "seen": critic.seen, "grad": None, "requires_grad": False}
    if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel() == 1 and out.requires_grad:
        result["requires_grad"] = True
        try:
            out.sum().backward()
        except Exception as exc:
            result["backward_error"] = error_text(exc)
        result["grad"] = plain(critic.weight.grad)
    return result


def wgan_smoke(critic_state: dict[str, torch.Tensor], p: torch.Tensor, q: torch.Tensor, steps: int, batch: int,
               lr: float, lam: float, seed: int) -> dict[str, Any]:
    """Train the given critic (q2_model.Critic) for ``steps`` Adam steps on the loss
    -(mean f(p) - mean f(q)) + lam * lp_reg(p, q, critic): the grader's distance, the student's penalty.
    Batches are drawn from the pools ``p`` and ``q``; returns the critic's weights."""
    import q2_model

    critic = q2_model.Critic(p.shape[1])
    critic.load_state_dict(critic_state)
    lp_reg = resolve("q2_solution.lp_reg")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    for _ in range(steps):
        xp = p[torch.randint(0, len(p), (batch,), generator=g)]
        xq = q[torch.randint(0, len(q), (batch,), generator=g)]
        penalty = lp_reg(xp, xq, critic)
        loss = -(critic(xp).mean() - critic(xq).mean()) + lam * penalty.reshape(-1)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: plain(v) for k, v in critic.state_dict().items()}


# ----------------------------------------------------------------------------- problem 3
def _simsiam(images_shape: torch.Size, dim: int, pred_dim: int, hidden: int, stop_gradient: bool,
             encoder_state: dict[str, torch.Tensor] | None = None,
             predictor_state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The student's SimSiam built by its own __init__ around the grader's encoder, then given
    the grader's encoder and predictor (``q3_model``; optionally with the grader's weights): a
    template whose __init__ rebuilds the head (torchvision's ``fc``) still runs the student's
    forward on modules the grader knows."""
    import q3_model

    size = int(torch.tensor(images_shape[1:]).prod()) if len(images_shape) > 1 else int(images_shape[0])
    def base_encoder(*args: Any, **kwargs: Any) -> nn.Module:  # base_encoder(dim) or (num_classes=dim, ...)
        return q3_model.mlp_encoder(args[0] if args else kwargs.get("num_classes", dim), hidden=hidden, input_size=size)

    model = resolve("q3_solution.SimSiam")(base_encoder, dim=dim, pred_dim=pred_dim, stop_gradient=stop_gradient)
    model.encoder = q3_model.mlp_encoder(dim, hidden=hidden, input_size=size)
    model.predictor = q3_model.mlp_predictor(dim, pred_dim)
    if encoder_state is not None:
        model.encoder.load_state_dict(encoder_state)
    if predictor_state is not None:
        model.predictor.load_state_dict(predictor_state)
    return model


def cosine_probe(x1: torch.Tensor, x2: torch.Tensor) -> Any:
    """``CosineSimilarity()(x1, x2)`` with the class's defaults."""
    return resolve("q3_solution.CosineSimilarity")()(x1, x2)


def simsiam_forward_probe(dim: int, pred_dim: int, hidden: int, stop_gradient: bool, x1: torch.Tensor,
                          x2: torch.Tensor, train: bool, encoder_state: dict[str, torch.Tensor],
                          predictor_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Run the student's ``forward(x1, x2)`` on the grader's encoder and predictor weights and
    report the outputs, whether each carries gradient, and whether the encoder gets gradient from
    the targets (z1 + z2) and from the predictions (p1 + p2)."""
    try:
        model = _simsiam(x1.shape, dim, pred_dim, hidden, stop_gradient, encoder_state, predictor_state)
        model.train(train)
        out = model(x1, x2)
    except Exception as exc:
        return {"error": error_text(exc)}
    if not isinstance(out, (tuple, list)) or len(out) != 4 or not all(isinstance(o, torch.Tensor) for o in out):
        return {"out": [plain(o) for o in out] if isinstance(out, (tuple, list)) else plain(out)}
    result: dict[str, Any] = {"out": [plain(o) for o in out], "requires_grad": [bool(o.requires_grad) for o in out]}
    for name, pair in (("targets", out[2:]), ("predictions", out[:2])):
        model.zero_grad(set_to_none=True)
        live = [o for o in pair if o.requires_grad]
        if live:
            sum(o.sum() for o in live).backward(retain_graph=True)
        result[f"encoder_grad_from_{name}"] = any(
            p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.encoder.parameters())
    return result


def simsiam_loss_probe(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                       stop_gradient: bool) -> dict[str, Any]:
    """``SimSiam(...).loss(p1, p2, z1, z2, nn.CosineSimilarity(dim=1))`` on leaves that require
    grad; returns the value and the four inputs' gradients (None: none flowed)."""
    model = _simsiam(torch.Size([1, 4]), p1.shape[1], 4, 8, stop_gradient)
    leaves = [t.clone().requires_grad_(True) for t in (p1, p2, z1, z2)]
    try:
        out = model.loss(*leaves, nn.CosineSimilarity(dim=1))
    except Exception as exc:
        return {"error": error_text(exc)}
    result: dict[str, Any] = {"out": plain(out), "grads": [None] * 4}
    if isinstance(out, torch.Tensor) and out.numel() == 1 and out.requires_grad:
        out.sum().backward()
        result["grads"] = [plain(t.grad) for t in leaves]
    return result


def simsiam_smoke(images: torch.Tensor, dim: int, pred_dim: int, hidden: int, steps: int, batch: int, lr: float,
                  seed: int, encoder_state: dict[str, torch.Tensor],
                  predictor_state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Train the student's SimSiam (stop_gradient=True; its forward, the grader's loss,
    augmentations, encoder and predictor, from the grader's initial weights) with SGD for ``steps`` steps on ``images`` [N, 1, 28, 28] in [0, 1]; returns the
    encoder's weights."""
    import q3_model

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = _simsiam(images.shape, dim, pred_dim, hidden, True, encoder_state, predictor_state)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    for _ in range(steps):
        x = images[torch.randint(0, len(images), (batch,), generator=g)]
        p1, p2, z1, z2 = model(q3_model.augment(x, g), q3_model.augment(x, g))
        loss = -0.5 * (F.cosine_similarity(p1, z2, dim=1).mean() + F.cosine_similarity(p2, z1, dim=1).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: plain(v) for k, v in model.encoder.state_dict().items()}
