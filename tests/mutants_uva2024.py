"""Template-style variants and bugs of the UvA DL1 2024 part 2 (``--edition uva2024``).

The base is ``tests/template_style/uva2024`` (a template student's solution written here:
normalised CIFAR-shaped inputs, ``denormalize``, the batch-1 ``test_attack`` loop, the SGD
``train``). A *variant* is another way a template student writes a correct function (each
clamping convention the template's "keep values in the valid range" allows, a fresh leaf from
PGD, cross-entropy in test_attack, ...): full marks. A *mutant* is a realistic bug in that
style: it loses points on its own function's checks and nowhere else. Edits are literal
find/replace on the template-style files (each ``find`` occurs exactly once).
``tools/calibrate_part2.py --edition uva2024`` reuses them as its broken variants.
"""
from __future__ import annotations

from tests.mutants_part2 import AA, FA, FL, PG, TA, TR, UT, e, m, v
from tests.support import ROOT, Edit, Mutant, Variant

TEMPLATE = ROOT / "tests" / "template_style" / "uva2024"

FGSM_STEP = "    perturbed_image = image + epsilon * sign_data_grad\n"
FGSM_VALID = "    perturbed_image = normalize(torch.clamp(denormalize(perturbed_image), 0, 1))\n"
LOSS = "    loss = alpha * original_loss + (1 - alpha) * adv_loss\n"
PGD_STEP = "            perturbed_data = perturbed_data + alpha * perturbed_data.grad.sign()\n"
PGD_ETA = "            eta = torch.clamp(perturbed_data - data, min=-epsilon, max=epsilon)\n"
PGD_VALID = "            perturbed_data = normalize(torch.clamp(denormalize(data + eta), 0, 1))\n"
PGD_RETURN = "        perturbed_data = perturbed_data.detach()\n    return perturbed_data\n"
TA_SKIP = "        if init_pred.item() != target.item():\n            continue\n"
TA_NLL = "        loss = F.nll_loss(output, target)\n"
TR_CAT_X = "                        inputs = torch.cat([inputs, adv_inputs], dim=0)\n"
TR_CAT_Y = "                        labels = torch.cat([labels, labels], dim=0)\n"


VARIANTS: list[Variant] = [
    v("fgsm_clamp_normalised_unit", FA, e(AA, FGSM_VALID, "    perturbed_image = torch.clamp(perturbed_image, 0, 1)\n")),
    v("fgsm_no_clamp", FA, e(AA, FGSM_VALID, "")),
    v("fgsm_clamp_valid_bounds", FA, e(AA, FGSM_VALID,
      "    lo = normalize(torch.zeros_like(perturbed_image))\n    hi = normalize(torch.ones_like(perturbed_image))\n"
      "    perturbed_image = torch.max(torch.min(perturbed_image, hi), lo)\n")),
    v("pgd_clamp_normalised_unit", PG, e(AA, PGD_VALID, "            perturbed_data = torch.clamp(data + eta, 0, 1)\n")),
    v("pgd_no_clamp", PG, e(AA, PGD_VALID, "            perturbed_data = data + eta\n")),
    v("pgd_leaf_requires_grad", PG, e(AA, PGD_RETURN,
      "        perturbed_data = perturbed_data.detach().requires_grad_(True)\n    return perturbed_data\n")),
    v("test_attack_cross_entropy", TA, e(AA, TA_NLL, "        loss = criterion(output, target)\n")),
    v("fgsm_loss_autograd_grad", FL, e(AA,
      "    model.zero_grad()\n    original_loss.backward(retain_graph=True)\n    data_grad = inputs.grad.data\n",
      "    data_grad = torch.autograd.grad(original_loss, inputs, retain_graph=True)[0]\n")),
]

MUTANTS: list[Mutant] = [
    m("fgsm_sign_reversed", FA, AA, FGSM_STEP, "    perturbed_image = image - epsilon * sign_data_grad\n",
      "the sign is reversed"),
    m("fgsm_eps_halved", FA, AA, FGSM_STEP, "    perturbed_image = image + epsilon / 2 * sign_data_grad\n",
      "epsilon halved"),
    m("fgsm_grad_not_sign", FA, AA, FGSM_STEP, "    perturbed_image = image + epsilon * data_grad\n",
      "the gradient itself was used instead of its sign"),
    m("loss_weights_swapped", FL, AA, LOSS, "    loss = (1 - alpha) * original_loss + alpha * adv_loss\n",
      "the loss weights are swapped"),
    m("loss_clean_only", FL, AA, LOSS, "    loss = original_loss\n", "only the clean loss"),
    m("pgd_no_projection", PG, AA, PGD_ETA, "            eta = perturbed_data - data\n",
      "no projection onto the epsilon-ball"),
    m("pgd_one_step", PG, AA, "    for i in range(num_iter):\n", "    for i in range(1):\n", "only one step"),
    m("pgd_sign_reversed", PG, AA, PGD_STEP,
      "            perturbed_data = perturbed_data - alpha * perturbed_data.grad.sign()\n", "the sign is reversed"),
    m("ta_misclassified_attacked", TA, AA, TA_SKIP, "", "misclassified examples counted"),
    m("train_adversarial_only", TR, UT, TR_CAT_X + TR_CAT_Y, "                        inputs = adv_inputs\n",
      "trained on the adversarial examples only"),
    m("train_clean_only", TR, UT, TR_CAT_X + TR_CAT_Y, "", "trained on the clean batch only"),
]


def _stub(function: str, keep_head: str, tail: str) -> Edit:
    """Replace ``function``'s body after ``keep_head`` by the template's stub: a bare raise, then
    the given code that the raise makes unreachable (``tail``)."""
    text = (TEMPLATE / "part2" / AA).read_text()
    start = text.index(f"def {function}(")
    end = text.index("\ndef ", start + 1) if "\ndef " in text[start + 1:] else len(text)
    head_at = text.index(keep_head, start) + len(keep_head)
    return e(AA, text[head_at:end], "    raise NotImplementedError()\n" + tail + "\n")


# The template as handed out, in this submission's files: each function a student writes is a
# stub again (train keeps the template's given STANDARD and FGSM branches around the PGD stub).
UNTOUCHED: tuple[Edit, ...] = (
    _stub("fgsm_attack", "def fgsm_attack(image, data_grad, epsilon=0.25):\n", "    return perturbed_image\n"),
    _stub("fgsm_loss", "    epsilon = defense_args[EPSILON]\n    inputs.requires_grad = True\n",
          "    if return_preds:\n        _, preds = torch.max(original_outputs, 1)\n        return loss, preds\n"
          "    else:\n        return loss\n"),
    _stub("pgd_attack", "    num_iter = args[NUM_ITER]\n", "    return perturbed_data\n"),
    e(AA, "            loss.backward()\n            data_grad = data.grad.data\n"
          "            perturbed_data = fgsm_attack(data, data_grad, attack_args[EPSILON])\n            output = model(perturbed_data)\n",
      "            raise NotImplementedError()\n"),
    e(AA, "            perturbed_data = pgd_attack(model, data, target, criterion, attack_args)\n            output = model(perturbed_data)\n",
      "            raise NotImplementedError()\n"),
    e(UT, "                        adv_inputs = pgd_attack(model, inputs, labels, criterion, defense_args)\n", ""),
    e(UT, TR_CAT_X + TR_CAT_Y, "                        raise NotImplementedError()\n"),
)
