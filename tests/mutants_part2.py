"""Mutants and variants of the part-2 functions (adversarial_attack.py, utils.py).

A *mutant* is the reference with one realistic student mistake; graded with
``--profile quick --only 'part2.*'`` it must lose points on a check tagged with the mutated
function, keep every other function's points, and, where ``mistake`` is set, a failing
check must say that phrase. A *variant* is a correct implementation written differently;
it must get full marks.

Edits are literal find/replace on the reference files (each ``find`` must occur exactly
once: a reformatted reference fails loudly here rather than silently testing nothing);
larger rewrites replace a function's fenced solution block, read through :func:`body`.
``tools/calibrate_part2.py`` reuses these definitions for its broken variants.
"""
from __future__ import annotations

import re

from tests.support import SOLUTIONS, Mutant, Variant, table_makers

AA, UT = "adversarial_attack.py", "utils.py"
FA = "part2.adversarial_attack.fgsm_attack"
FL = "part2.adversarial_attack.fgsm_loss"
PG = "part2.adversarial_attack.pgd_attack"
TA = "part2.adversarial_attack.test_attack"
TR = "part2.utils.train"


def body(file: str, name: str, occurrence: int = 0) -> str:
    """The code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` inside ``def name`` (n-th block)."""
    text = (SOLUTIONS / "part2" / file).read_text()
    start = re.search(rf"^\s*def {re.escape(name)}\b", text, re.M)
    assert start, f"{name} not found in {file}"
    blocks = re.findall(r"^[ \t]*# BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*# END SOLUTION", text[start.end():], re.M | re.S)
    return blocks[occurrence]


def between(file: str, start: str, end: str) -> str:
    """The reference text from ``start`` up to (not including) ``end`` (both must be unique)."""
    text = (SOLUTIONS / "part2" / file).read_text()
    i = text.index(start)
    return text[i:text.index(end, i)]


e, m, v = table_makers("part2")


# Reference lines the edits hook on.
FGSM_LINE = "    perturbed_image = image + epsilon * data_grad.sign()\n"
FGSM_CLAMP = "    perturbed_image = perturbed_image.clamp(0.0, 1.0)\n"
LOSS_LINE = "    loss = alpha * clean_loss + (1 - alpha) * adversarial_loss\n"
ADV_LOSS = "    adversarial_loss = criterion(model(x_fgsm), labels)\n"
DATA_GRAD = "    (data_grad,) = torch.autograd.grad(clean_loss, x, retain_graph=True)\n"
X_FGSM = "    x_fgsm = fgsm_attack(x.detach(), data_grad, epsilon).detach()  # constant for the update\n"
PGD_STEP = "            perturbed = perturbed + alpha * grad.sign()\n"
PGD_PROJ = "            perturbed = original + (perturbed - original).clamp(-epsilon, epsilon)\n"
PGD_CLAMP = "            perturbed = perturbed.clamp(0.0, 1.0)\n"
PGD_LOOP = "    for _ in range(num_iter):\n        # A fresh leaf each step"
TA_KEEP = "        keep = init_pred == target  # only attack what the model gets right\n"
TA_FINAL = "            final_pred = model(perturbed_data).argmax(1)\n"
TA_GRAD = "            (data_grad,) = torch.autograd.grad(loss, images)\n"
TA_FGSM = "            perturbed_data = fgsm_attack(data, data_grad, attack_args[EPSILON])\n"
TR_CAT_X = "                    inputs = torch.cat([inputs, adversarial])\n"
TR_CAT_Y = "                    labels = torch.cat([labels, labels])  # an adversarial example keeps its label\n"

PGD_ACCUMULATING = """    original = data.detach()
    perturbed = original.clone().requires_grad_(True)
    for _ in range(num_iter):
        loss = criterion(model(perturbed), target)
        loss.backward()  # perturbed.grad is never zeroed: it sums the gradients of all iterations
        with torch.no_grad():
            stepped = perturbed + alpha * perturbed.grad.sign()
            stepped = original + (stepped - original).clamp(-epsilon, epsilon)
            perturbed.copy_(stepped.clamp(0.0, 1.0))
    perturbed_data = perturbed.detach()
"""

MUTANTS: list[Mutant] = [
    # ---------------------------------------------------------------- fgsm_attack
    m("fgsm_grad_not_sign", FA, AA, FGSM_LINE, "    perturbed_image = image + epsilon * data_grad\n",
      "the gradient itself was used instead of its sign"),
    m("fgsm_sign_reversed", FA, AA, FGSM_LINE, "    perturbed_image = image - epsilon * data_grad.sign()\n",
      "the sign is reversed"),
    m("fgsm_eps_doubled", FA, AA, FGSM_LINE, "    perturbed_image = image + 2 * epsilon * data_grad.sign()\n",
      "epsilon doubled"),
    m("fgsm_eps_halved", FA, AA, FGSM_LINE, "    perturbed_image = image + epsilon / 2 * data_grad.sign()\n",
      "epsilon halved"),
    m("fgsm_perturbation_only", FA, AA, FGSM_LINE + FGSM_CLAMP, "    perturbed_image = epsilon * data_grad.sign()\n",
      "only the perturbation"),
    m("fgsm_in_place", FA, AA, FGSM_LINE, "    perturbed_image = image.add_(epsilon * data_grad.sign())\n", "in place"),
    # ---------------------------------------------------------------- fgsm_loss
    m("loss_weights_swapped", FL, AA, LOSS_LINE, "    loss = (1 - alpha) * clean_loss + alpha * adversarial_loss\n",
      "the loss weights are swapped"),
    m("loss_adversarial_only", FL, AA, LOSS_LINE, "    loss = adversarial_loss\n", "only the adversarial loss"),
    m("loss_preds_adversarial", FL, AA, ADV_LOSS,
      "    original_outputs = model(x_fgsm)\n    adversarial_loss = criterion(original_outputs, labels)\n",
      "preds of the adversarial pass"),
    m("loss_clean_term_detached", FL, AA, LOSS_LINE, "    loss = alpha * clean_loss.item() + (1 - alpha) * adversarial_loss\n",
      "the clean term is cut from the graph"),
    m("loss_backward_frees_graph", FL, AA, DATA_GRAD, "    clean_loss.backward()\n    data_grad = x.grad\n",
      "retain_graph"),
    m("loss_alpha_as_epsilon", FL, AA, X_FGSM, "    x_fgsm = fgsm_attack(x.detach(), data_grad, alpha).detach()\n",
      "instead of defense_args[EPSILON]"),
    m("loss_always_tuple", FL, AA,
      "    if return_preds:\n        _, preds = torch.max(original_outputs, 1)\n        return loss, preds\n    return loss\n",
      "    _, preds = torch.max(original_outputs, 1)\n    return loss, preds\n", "expected the loss alone"),
    # ---------------------------------------------------------------- pgd_attack
    m("pgd_no_projection", PG, AA, PGD_PROJ, "", "no projection onto the epsilon-ball"),
    m("pgd_project_current", PG, AA, PGD_STEP + PGD_PROJ,
      "            perturbed = perturbed + (alpha * grad.sign()).clamp(-epsilon, epsilon)\n",
      "projection around the current iterate"),
    m("pgd_step_radius_swapped", PG, AA, PGD_STEP + PGD_PROJ,
      "            perturbed = perturbed + epsilon * grad.sign()\n"
      "            perturbed = original + (perturbed - original).clamp(-alpha, alpha)\n",
      "step size and radius swapped"),
    m("pgd_radius_alpha", PG, AA, PGD_PROJ,
      "            perturbed = original + (perturbed - original).clamp(-alpha, alpha)\n",
      "the projection radius is alpha"),
    m("pgd_one_step", PG, AA, PGD_LOOP, "    for _ in range(1):\n        # A fresh leaf each step", "only one step"),
    m("pgd_grad_not_sign", PG, AA, PGD_STEP, "            perturbed = perturbed + alpha * grad\n",
      "the gradient itself was used instead of its sign"),
    m("pgd_sign_reversed", PG, AA, PGD_STEP, "            perturbed = perturbed - alpha * grad.sign()\n",
      "the sign is reversed"),
    Mutant("pgd_not_detached", PG, (
        e(AA, "        with torch.no_grad():\n            perturbed = perturbed + alpha",
          "        if True:  # no torch.no_grad(): the steps stay in the autograd graph\n            perturbed = perturbed + alpha"),
        e(AA, "    perturbed_data = perturbed.detach()\n", "    perturbed_data = perturbed\n")), "detached"),
    Mutant("pgd_grad_accumulates", PG, (e(AA, body(AA, "pgd_attack"), PGD_ACCUMULATING),),
           "accumulates over the iterations"),
    # ---------------------------------------------------------------- test_attack
    m("ta_misclassified_counted", TA, AA, TA_KEEP, "        keep = torch.ones_like(target, dtype=torch.bool)\n",
      "misclassified examples counted"),
    Mutant("ta_divided_by_attacked", TA, (
        e(AA, "        total += target.numel()\n", ""),
        e(AA, "        data, target, init_pred = data[keep], target[keep], init_pred[keep]\n",
          "        data, target, init_pred = data[keep], target[keep], init_pred[keep]\n        total += target.numel()\n")),
        "divided by the number of attacked"),
    m("ta_final_pred_clean", TA, AA, TA_FINAL, "            final_pred = model(data).argmax(1)\n",
      "the clean accuracy was returned"),
    m("ta_default_epsilon", TA, AA, TA_FGSM, "            perturbed_data = fgsm_attack(data, data_grad)\n",
      "expected attack_args[EPSILON]"),
    m("ta_gradient_of_minus_loss", TA, AA, TA_GRAD, "            (data_grad,) = torch.autograd.grad(-loss, images)\n",
      "its sign is reversed"),
    # ---------------------------------------------------------------- train (PGD branch)
    Mutant("train_adversarial_only", TR, (e(UT, TR_CAT_X, "                    inputs = adversarial\n"),
                                          e(UT, TR_CAT_Y, "")), "trained on the adversarial examples only"),
    m("train_labels_not_duplicated", TR, UT, TR_CAT_Y, "", "labels not duplicated"),
    m("train_labels_interleaved", TR, UT, TR_CAT_Y, "                    labels = labels.repeat_interleave(2)\n",
      "labels not duplicated in the batch's order"),
    Mutant("train_clean_only", TR, (e(UT, TR_CAT_X, ""), e(UT, TR_CAT_Y, "")), "trained on the clean batch only"),
]

# ---------------------------------------------------------------------------- variants
PGD_RANDOM_START = """    original = data.detach()
    # Random start, uniform in the epsilon-ball (clamped to the data range).
    perturbed = (original + torch.empty_like(original).uniform_(-epsilon, epsilon)).clamp(0.0, 1.0)
    for _ in range(num_iter):
        perturbed = perturbed.detach().requires_grad_(True)
        loss = criterion(model(perturbed), target)
        (grad,) = torch.autograd.grad(loss, perturbed)
        with torch.no_grad():
            perturbed = perturbed + alpha * grad.sign()
            perturbed = original + (perturbed - original).clamp(-epsilon, epsilon)
            perturbed = perturbed.clamp(0.0, 1.0)
    perturbed_data = perturbed.detach()
"""

PGD_BACKWARD_MINMAX = """    perturbed = data.clone().detach()
    for _ in range(num_iter):
        perturbed.requires_grad = True
        model.zero_grad()
        loss = criterion(model(perturbed), target)
        loss.backward()
        with torch.no_grad():
            perturbed = perturbed + alpha * torch.sign(perturbed.grad)
            perturbed = torch.max(torch.min(perturbed, data + epsilon), data - epsilon)
            perturbed = torch.clamp(perturbed, min=0, max=1)
        perturbed = perturbed.detach()
    perturbed_data = perturbed.clone().detach()
"""

LOSS_BACKWARD_NLL = """    x = inputs.clone().detach()
    x.requires_grad = True
    original_outputs = model(x)
    # NLL on log-softmax: the same as the cross-entropy criterion the loop passes in.
    clean_loss = nn.functional.nll_loss(nn.functional.log_softmax(original_outputs, dim=1), labels)
    model.zero_grad()
    clean_loss.backward(retain_graph=True)
    x_fgsm = fgsm_attack(x, x.grad.data, epsilon).detach()
    adv_outputs = model(x_fgsm)
    adversarial_loss = nn.functional.nll_loss(nn.functional.log_softmax(adv_outputs, dim=1), labels)
    loss = alpha * clean_loss + (1 - alpha) * adversarial_loss
"""

LOSS_INLINE = """    x = inputs.clone().requires_grad_(True)
    original_outputs = model(x)
    clean_loss = criterion(original_outputs, labels)
    grad = torch.autograd.grad(clean_loss, x, retain_graph=True)[0]
    with torch.no_grad():
        x_fgsm = torch.clamp(x + epsilon * grad.sign(), 0, 1)  # FGSM written out, no fgsm_attack call
    loss = alpha * clean_loss + (1 - alpha) * criterion(model(x_fgsm), labels)
"""

TA_LOOP = """    for data, target in test_loader:
        data, target = data.to(device), target.to(device)
        for i in range(len(target)):  # one example at a time, as in the template with batch size 1
            total += 1
            x, y = data[i:i + 1].clone(), target[i:i + 1]
            x.requires_grad = True
            output = model(x)
            init_pred = output.max(1, keepdim=True)[1]
            if init_pred.item() != y.item():
                continue
            if attack_function == FGSM:
                loss = nn.functional.nll_loss(nn.functional.log_softmax(output, dim=1), y)
                model.zero_grad()
                loss.backward()
                perturbed = fgsm_attack(x, x.grad.data, attack_args[EPSILON])
            else:
                perturbed = pgd_attack(model, x.detach(), y, criterion, attack_args)
            final_pred = model(perturbed).max(1, keepdim=True)[1]
            if final_pred.item() == y.item():
                correct += 1
            elif len(adv_examples) < 5:
                adv_examples.append((init_pred.item(), final_pred.item(), x.squeeze().detach().cpu().numpy(),
                                     perturbed.squeeze().detach().cpu().numpy()))

"""

TA_ATTACK_ALL = """    for data, target in test_loader:
        data, target = data.to(device), target.to(device)
        total += target.numel()
        with torch.no_grad():
            init_pred = model(data).argmax(1)
        # Attack every example, then count only those right before AND after.
        if attack_function == FGSM:
            images = data.clone().requires_grad_(True)
            grad = torch.autograd.grad(criterion(model(images), target), images)[0]
            adversarial = fgsm_attack(data, grad, attack_args[EPSILON])
        else:
            adversarial = pgd_attack(model, data, target, criterion, attack_args)
        with torch.no_grad():
            final_pred = model(adversarial).argmax(1)
        ok = init_pred == target
        correct += int((ok & (final_pred == target)).sum())
        for i in torch.nonzero(ok & (final_pred != target)).flatten().tolist():
            if len(adv_examples) < 5:
                adv_examples.append((int(init_pred[i]), int(final_pred[i]), data[i].cpu().numpy(),
                                     adversarial[i].detach().cpu().numpy()))

"""

TR_TWO_PASSES = """                    adversarial = pgd_attack(model, inputs, labels, criterion, defense_args)
                    clean_out, adv_out = model(inputs), model(adversarial)
                    # Mean over the 2B examples = the average of the two batch means.
                    loss = 0.5 * (criterion(clean_out, labels) + criterion(adv_out, labels))
                    outputs = torch.cat([clean_out, adv_out])
                    labels = torch.cat([labels, labels])
                    preds = outputs.argmax(1)
"""

TR_SUM = """                    x_adv = pgd_attack(model, inputs, labels, criterion, defense_args)
                    outputs = model(torch.cat((inputs, x_adv), dim=0))
                    labels = labels.repeat(2)
                    loss = nn.functional.cross_entropy(outputs, labels, reduction="sum")  # Adam: scale-free
                    preds = outputs.argmax(1)
"""

# The UvA template's style: each step makes a fresh leaf that requires grad, and the last one is
# returned as it is (no autograd history, requires_grad still True): correct.
PGD_LEAF_REQUIRES_GRAD = """    perturbed = data.clone().detach().requires_grad_(True)
    for _ in range(num_iter):
        loss = criterion(model(perturbed), target)
        grad = torch.autograd.grad(loss, perturbed)[0]
        step = perturbed.detach() + alpha * grad.sign()
        step = torch.min(torch.max(step, data - epsilon), data + epsilon).clamp(0, 1)
        perturbed = step.detach().requires_grad_(True)
    perturbed_data = perturbed
"""

TA_FOR = "    for data, target in test_loader:\n"
TA_END = "    final_acc = correct / total if total else 0.0\n"

VARIANTS: list[Variant] = [
    v("fgsm_not_clamped", FA, e(AA, FGSM_CLAMP, "")),
    v("fgsm_torch_clamp", FA, e(AA, FGSM_LINE + FGSM_CLAMP,
                                "    perturbed_image = torch.clamp(image + epsilon * torch.sign(data_grad), min=0, max=1)\n")),
    v("loss_backward_nll", FL, e(AA, body(AA, "fgsm_loss"), LOSS_BACKWARD_NLL)),
    v("loss_inline_fgsm", FL, e(AA, body(AA, "fgsm_loss"), LOSS_INLINE)),
    v("pgd_random_start", PG, e(AA, body(AA, "pgd_attack"), PGD_RANDOM_START)),
    v("pgd_not_clamped", PG, e(AA, PGD_CLAMP, "")),
    v("pgd_backward_minmax", PG, e(AA, body(AA, "pgd_attack"), PGD_BACKWARD_MINMAX)),
    v("pgd_leaf_requires_grad", PG, e(AA, body(AA, "pgd_attack"), PGD_LEAF_REQUIRES_GRAD)),
    v("ta_loop_per_example", TA, e(AA, between(AA, TA_FOR, TA_END), TA_LOOP)),
    v("ta_attack_all_then_mask", TA, e(AA, between(AA, TA_FOR, TA_END), TA_ATTACK_ALL)),
    v("train_two_passes", TR, e(UT, body(UT, "train"), TR_TWO_PASSES)),
    v("train_sum_repeat", TR, e(UT, body(UT, "train"), TR_SUM)),
]
