"""Train the grader's standard FashionMNIST classifier (the part-2 checks' "pretrained" model).

The part-2 checks attack a *trained* network (an attack on random weights says little),
so the grader ships one: the instructor's ``SmallNet`` (``solutions/part2/models.py``)
trained with plain cross-entropy by the reference ``train`` on the whole FashionMNIST
training split. The result is deterministic for a given torch build (one thread, fixed
seeds, no data augmentation) and small (about 100 kB of float32 tensors)::

    .venv/bin/python tools/train_grader_model.py            # writes the asset below
    .venv/bin/python tools/train_grader_model.py --check    # retrain in memory, compare with the asset

The checks load it with ``torch.load(path, weights_only=True)`` (a plain dict of tensors,
no pickled code) in the trusted process and send the tensors to the worker.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PART2 = ROOT / "solutions" / "part2"
ASSET = ROOT / "autograder" / "checks" / "part2" / "assets" / "smallnet_fashionmnist.pt"
SEED = 0
EPOCHS = 4
BATCH_SIZE = 128
LR = 1e-3


def train_model(epochs: int = EPOCHS, seed: int = SEED) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Train SmallNet as described above; returns (state dict, test metrics)."""
    sys.path.insert(0, str(PART2))
    from adversarial_attack import fgsm_attack, pgd_attack  # the reference, to report attacked accuracy
    from data import get_loaders
    from globals import ALPHA, EPSILON, NUM_ITER, STANDARD
    from models import SmallNet
    from utils import test, train

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = SmallNet()
    trainloader, validloader, testloader, _ = get_loaders(batch_size=BATCH_SIZE, seed=seed)
    model = train(model, trainloader, validloader, num_epochs=epochs, defense_strategy=STANDARD, lr=LR)
    model.eval()
    metrics = {"clean": test(model, testloader)}
    # Attacked accuracy on the first 1,000 test images, for the record (epsilon 0.1).
    images = torch.cat([x for x, _ in testloader])[:1000]
    labels = torch.cat([y for _, y in testloader])[:1000]
    criterion = torch.nn.CrossEntropyLoss()
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(criterion(model(x), labels), x)
    with torch.no_grad():
        metrics["fgsm_0.1"] = float((model(fgsm_attack(images, grad, 0.1)).argmax(1) == labels).float().mean())
    adv = pgd_attack(model, images, labels, criterion, {ALPHA: 0.025, EPSILON: 0.1, NUM_ITER: 10})
    with torch.no_grad():
        metrics["pgd_0.1"] = float((model(adv).argmax(1) == labels).float().mean())
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    return state, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="retrain and compare with the stored asset instead of writing it")
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args(argv)
    started = time.time()
    state, metrics = train_model()
    print(f"trained in {time.time() - started:.0f} s; test accuracy: "
          + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if args.check:
        stored = torch.load(args.out, map_location="cpu", weights_only=True)
        worst = max((stored[k] - v).abs().max().item() for k, v in state.items())
        print(f"largest difference from {args.out}: {worst:.3g}")
        return 0 if worst < 1e-4 else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
