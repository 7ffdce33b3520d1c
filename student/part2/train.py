"""Train classifiers with and without adversarial defences, then attack them.

For each strategy in ``--train_strats`` (standard, fgsm, pgd): train a fresh model (or
load ``--pretrained``), then report clean, FGSM and PGD accuracy on the test set as a
table. ``--visualise`` saves PNGs of successful adversarial examples next to their
originals. Examples::

    python train.py                                    # FashionMNIST, all three strategies
    python train.py --train_strats standard --epochs 1 --subset 1000 --visualise
    python train.py --dataset cifar10 --pretrained weights.pt --train_strats standard

Not graded: nothing needs to change here. Exit status 2 (one line on stderr) when the
data or a checkpoint is missing, or when a function you still have to write raises
NotImplementedError.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import time
from typing import Any

import numpy as np
import torch

from adversarial_attack import fgsm_attack, fgsm_loss, pgd_attack, test_attack
from data import DatasetMissingError, get_loaders
from globals import ALPHA, CIFAR10, EPSILON, FASHIONMNIST, FGSM, NUM_ITER, PGD, STANDARD
from models import SmallNet, get_model
from utils import test, train


def preflight(strategies: list[str]) -> None:
    """Call every function this run needs on a tiny random problem, so that a function that
    still raises NotImplementedError is reported before minutes of training, not after."""
    torch_state = torch.random.get_rng_state()
    model = SmallNet()
    images, labels = torch.rand(4, 1, 28, 28), torch.arange(4)
    loader = [(images, labels)]
    fgsm_args = {ALPHA: 0.5, EPSILON: 0.1}
    pgd_args = {ALPHA: 0.01, EPSILON: 0.1, NUM_ITER: 1}
    criterion = torch.nn.CrossEntropyLoss()
    with contextlib.redirect_stdout(io.StringIO()):
        fgsm_attack(images, torch.randn_like(images), 0.1)
        pgd_attack(model, images, labels, criterion, pgd_args)
        if FGSM in strategies:
            fgsm_loss(model, criterion, images, labels, fgsm_args)
        if PGD in strategies:
            train(SmallNet(), loader, loader, num_epochs=1, defense_strategy=PGD, defense_args=pgd_args)
        test_attack(model, loader, FGSM, fgsm_args)
        test_attack(model, loader, PGD, pgd_args)
    torch.random.set_rng_state(torch_state)


def visualise(adv_examples: list, class_names: list[str], strategy: str, attack: str, out_dir: str) -> list[str]:
    """Save one PNG per adversarial example: original | adversarial | perturbation. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def as_image(array: np.ndarray) -> np.ndarray:  # [C,H,W] -> [H,W] or [H,W,C]
        return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)

    paths = []
    os.makedirs(out_dir, exist_ok=True)
    for i, (init_pred, final_pred, original, adversarial) in enumerate(adv_examples):
        delta = adversarial - original
        bound = float(np.abs(delta).max()) or 1.0
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
        fig.suptitle(f"model trained with {strategy}, attacked with {attack}")
        axes[0].imshow(as_image(original), cmap="gray", vmin=0, vmax=1)
        axes[0].set_title(f"original\npredicted: {class_names[init_pred]}")
        axes[1].imshow(as_image(adversarial), cmap="gray", vmin=0, vmax=1)
        axes[1].set_title(f"adversarial\npredicted: {class_names[final_pred]}")
        axes[2].imshow(as_image(delta).mean(-1) if delta.shape[0] > 1 else as_image(delta),
                       cmap="seismic", vmin=-bound, vmax=bound)
        axes[2].set_title(f"perturbation\nmax |delta| = {bound:.3f}")
        for ax in axes:
            ax.axis("off")
        path = os.path.join(out_dir, f"train-{strategy}_att-{attack}_{i + 1}.png")
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every requested strategy; returns one result row per strategy."""
    preflight(args.train_strats)
    if args.pretrained:
        get_model(args.dataset, args.pretrained)  # a missing or unfitting checkpoint fails now, not after loading data
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print("arguments: " + ", ".join(f"{k}={v}" for k, v in vars(args).items()))
    print(f"device: {device}")
    strategy_args = {
        STANDARD: {},
        FGSM: {ALPHA: args.alpha_fgsm, EPSILON: args.epsilon_fgsm},
        PGD: {ALPHA: args.alpha_pgd, EPSILON: args.epsilon_pgd, NUM_ITER: args.num_iter_pgd},
    }
    trainloader, validloader, testloader, attributes = get_loaders(
        args.dataset, batch_size=args.batch_size, data_dir=args.data_dir, augmentations=args.augmentations,
        subset=args.subset, test_batch_size=args.test_batch_size, test_subset=args.test_subset, seed=args.seed,
    )
    print(f"data: {args.dataset}, {attributes['N_train']} train / {attributes['N_valid']} valid / {attributes['N_test']} test")
    os.makedirs(args.out_dir, exist_ok=True)
    rows = []
    for strategy in args.train_strats:
        print(f"=== training strategy: {strategy}")
        torch.manual_seed(args.seed)  # every strategy starts from the same initial weights
        model = get_model(args.dataset, args.pretrained).to(device)
        start = time.time()
        if strategy == STANDARD and args.pretrained:
            print("standard strategy with --pretrained: skipping training")
        else:
            model = train(model, trainloader, validloader, num_epochs=args.epochs,
                          defense_strategy=strategy, defense_args=strategy_args[strategy])
        train_s = time.time() - start
        torch.save(model.state_dict(), os.path.join(args.out_dir, f"{args.dataset}_{strategy}.pt"))
        row: dict[str, Any] = {"strategy": strategy, "train_s": round(train_s, 1), "clean": test(model, testloader)}
        for attack in (FGSM, PGD):
            row[attack], examples = test_attack(model, testloader, attack, strategy_args[attack])
            if args.visualise:
                paths = visualise(examples, attributes["class_names"], strategy, attack,
                                  os.path.join(args.out_dir, "adversarial_examples"))
                print(f"saved {len(paths)} PNGs to {os.path.join(args.out_dir, 'adversarial_examples')}")
        rows.append(row)

    print()
    print(f"FGSM: epsilon={args.epsilon_fgsm}; PGD: epsilon={args.epsilon_pgd}, alpha={args.alpha_pgd}, "
          f"num_iter={args.num_iter_pgd}; accuracies on {attributes['N_test']} test images")
    print(f"| {'strategy':8s} | {'clean':>6s} | {'FGSM':>6s} | {'PGD':>6s} | {'train s':>7s} |")
    print(f"|{'-' * 10}|{'-' * 8}|{'-' * 8}|{'-' * 8}|{'-' * 9}|")
    for row in rows:
        print(f"| {row['strategy']:8s} | {row['clean']:6.4f} | {row[FGSM]:6.4f} | {row[PGD]:6.4f} | {row['train_s']:7.1f} |")
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": rows}, f, indent=2)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train and attack classifiers (FashionMNIST or CIFAR-10)")
    parser.add_argument("--dataset", choices=[FASHIONMNIST, CIFAR10], default=FASHIONMNIST)
    parser.add_argument("--data_dir", default=None,
                        help="data folder (default: /usr/share/datasets/fashion-mnist, then ./data)")
    parser.add_argument("--train_strats", nargs="+", choices=[STANDARD, FGSM, PGD], default=[STANDARD, FGSM, PGD],
                        help="training strategies (defences) to run, in order")
    parser.add_argument("--epochs", "--num_epochs", dest="epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--test_batch_size", type=int, default=500)
    parser.add_argument("--subset", type=int, default=None, help="train on the first N training examples only")
    parser.add_argument("--test_subset", type=int, default=None, help="evaluate on the first N test examples only")
    parser.add_argument("--augmentations", action="store_true", help="random flips and shifts of training images")
    parser.add_argument("--pretrained", default=None, metavar="PATH", help="start from this checkpoint (state dict)")
    parser.add_argument("--epsilon_fgsm", type=float, default=0.1, help="FGSM step / ball radius (pixel units)")
    parser.add_argument("--alpha_fgsm", type=float, default=0.5, help="weight of the clean loss in FGSM training")
    parser.add_argument("--epsilon_pgd", type=float, default=0.1, help="PGD ball radius (pixel units)")
    parser.add_argument("--alpha_pgd", type=float, default=0.025, help="PGD step size (pixel units)")
    parser.add_argument("--num_iter_pgd", type=int, default=10, help="number of PGD steps")
    parser.add_argument("--visualise", action="store_true", help="save PNGs of adversarial examples")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", default="runs", help="checkpoints, results.json and PNGs go here")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    try:
        main(arguments)
    except NotImplementedError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except (DatasetMissingError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
