"""Train a VAE on 4-bit FashionMNIST with plain PyTorch.

Graded file (implement this one *or* ``train_pl.py``): the bodies of ``VAE.forward``
and ``VAE.sample``. The training loop below is provided and stays as it is.

Run from this folder::

    python train_torch.py --epochs 80            # full run (defaults: z_dim 20, lr 1e-3, batch 128)
    python train_torch.py --epochs 2 --z_dim 2   # quick run with the manifold plot
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from cnn_encoder_decoder import CNNDecoder, CNNEncoder
from utils import KLD, elbo_to_bpd, sample_reparameterize


class VAE(nn.Module):
    def __init__(self, num_filters: int, z_dim: int, lr: float) -> None:
        """Variational autoencoder with a CNN encoder and a 16-way categorical CNN decoder.

        Args:
            num_filters: channels of the CNN encoder/decoder.
            z_dim: dimensionality of the latent space.
            lr: learning rate of the optimiser the training loop builds.
        """
        super().__init__()
        self.z_dim = z_dim
        self.lr = lr
        self.encoder = CNNEncoder(z_dim=z_dim, num_filters=num_filters)
        self.decoder = CNNDecoder(z_dim=z_dim, num_filters=num_filters)

    def forward(self, imgs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The VAE loss terms of one batch.

        Encode, draw one z per image with the reparameterisation trick, decode to
        per-pixel logits over the 16 grey levels, and score the batch. Per image ``i``:

        * ``L_rec_i = - sum_pixels log softmax(logits)[x]`` -- the categorical
          cross-entropy of the true 4-bit value, summed over all pixels (not averaged);
        * ``L_reg_i = KLD(mean_i, log_std_i)`` -- KL from q(z|x_i) to the N(0, I) prior;
        * ``bpd_i = elbo_to_bpd(L_rec_i + L_reg_i, imgs.shape)``.

        Args:
            imgs: long tensor ``[B, 1, 28, 28]``, 4-bit pixel values in ``[0, 15]``.

        Returns:
            ``(L_rec, L_reg, bpd)``: three scalar (0-dim) float tensors, each the batch mean
            of the per-image quantity above. ``bpd`` is the training loss.
        """
        raise NotImplementedError('VAE.forward (Q1.9) is not implemented yet: write your code here, in part1/train_torch.py.')

    @torch.no_grad()
    def sample(self, batch_size: int) -> Tensor:
        """Generate new images: z ~ N(0, I), then every pixel from the decoder's softmax.

        Args:
            batch_size: number of images ``B``.

        Returns:
            long tensor ``[B, 1, 28, 28]`` with values in ``[0, 15]`` (on the model's device).
            Pixels are *sampled* from their categorical distributions, not arg-maxed.
        """
        raise NotImplementedError('VAE.sample (Q1.9) is not implemented yet: write your code here, in part1/train_torch.py.')


# ----------------------------------------------------------------------------
# Training loop (provided).
# ----------------------------------------------------------------------------
def _limited(loader: Any, limit: int) -> Any:
    for i, batch in enumerate(loader):
        if limit and i >= limit:
            return
        yield batch


def train_epoch(model: VAE, loader: Any, optimizer: torch.optim.Optimizer, device: torch.device,
                limit: int = 0, desc: str = "train") -> float:
    """One pass over the training data; returns the image-weighted mean train bpd."""
    model.train()
    total, count = 0.0, 0
    total_batches = min(len(loader), limit) if limit else len(loader)
    bar = tqdm(_limited(loader, limit), total=total_batches, desc=desc, leave=False, dynamic_ncols=True)
    for imgs, _ in bar:
        imgs = imgs.to(device)
        _, _, bpd = model(imgs)
        optimizer.zero_grad(set_to_none=True)
        bpd.backward()
        optimizer.step()
        total += bpd.item() * imgs.shape[0]
        count += imgs.shape[0]
        bar.set_postfix(bpd=f"{total / count:.4f}")
    return total / count


@torch.no_grad()
def evaluate(model: VAE, loader: Any, device: torch.device, limit: int = 0) -> float:
    """Image-weighted mean bpd (one z sample per image) over a loader."""
    model.eval()
    total, count = 0.0, 0
    for imgs, _ in _limited(loader, limit):
        imgs = imgs.to(device)
        _, _, bpd = model(imgs)
        total += bpd.item() * imgs.shape[0]
        count += imgs.shape[0]
    return total / count


def train_vae(args: argparse.Namespace) -> dict[str, Any]:
    """Train, validate every epoch, test the best-validation model; write PNGs and metrics to ``args.log_dir``."""
    from data import get_loaders
    from train_common import SAMPLE_EPOCHS, plot_bpd, resolve_device, save_manifold, save_samples, seed_everything, write_metrics

    device = resolve_device(args.device)
    seed_everything(args.seed)
    # Build the model first: an unimplemented part fails here, before data loading.
    model = VAE(num_filters=args.num_filters, z_dim=args.z_dim, lr=args.lr).to(device)
    train_loader, val_loader, test_loader = get_loaders(args.dataset, args.batch_size, args.data_dir,
                                                        args.num_workers, seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    os.makedirs(args.log_dir, exist_ok=True)
    print(f"training on {device} | {args.dataset}: {len(train_loader.dataset)} train, "
          f"{len(val_loader.dataset)} val, {len(test_loader.dataset)} test | logs: {args.log_dir}")

    save_samples(model, os.path.join(args.log_dir, "samples_epoch_000.png"))
    history: list[dict[str, float]] = []
    best_val, best_state = float("inf"), copy.deepcopy(model.state_dict())
    for epoch in range(1, args.epochs + 1):
        start = time.time()
        train_bpd = train_epoch(model, train_loader, optimizer, device, args.limit_batches,
                                desc=f"epoch {epoch}/{args.epochs}")
        val_bpd = evaluate(model, val_loader, device, args.limit_batches)
        seconds = time.time() - start
        history.append({"epoch": epoch, "train_bpd": train_bpd, "val_bpd": val_bpd, "seconds": seconds})
        print(f"epoch {epoch:3d}/{args.epochs}  train bpd {train_bpd:.4f}  val bpd {val_bpd:.4f}  ({seconds:.1f} s)")
        if val_bpd < best_val:
            best_val, best_state = val_bpd, copy.deepcopy(model.state_dict())
        if epoch in SAMPLE_EPOCHS and epoch != args.epochs:
            save_samples(model, os.path.join(args.log_dir, f"samples_epoch_{epoch:03d}.png"))
    save_samples(model, os.path.join(args.log_dir, f"samples_epoch_{args.epochs:03d}.png"))

    model.load_state_dict(best_state)
    torch.save(best_state, os.path.join(args.log_dir, "best_model.pt"))
    test_bpd = evaluate(model, test_loader, device, args.limit_batches)
    print(f"test bpd {test_bpd:.4f} (best validation bpd {best_val:.4f})")
    if args.z_dim == 2:
        save_manifold(model.decoder, os.path.join(args.log_dir, "vae_manifold.png"))
    if history:
        plot_bpd(history, os.path.join(args.log_dir, "bpd_curve.png"), test_bpd)
    metrics = {"args": vars(args), "history": history, "best_val_bpd": best_val, "test_bpd": test_bpd}
    write_metrics(os.path.join(args.log_dir, "metrics.json"), metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    from train_common import build_parser, run_main

    parser = build_parser("Train a VAE on 4-bit images (plain PyTorch).")
    parser.prog = "train_torch.py"
    return run_main(train_vae, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
