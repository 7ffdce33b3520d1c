"""Train a VAE on 4-bit FashionMNIST with PyTorch Lightning.

Graded file (implement this one *or* ``train_torch.py``): the bodies of ``VAE.forward``
and ``VAE.sample``. Everything else (logging steps, optimiser, callbacks, the
``train_vae`` driver) is provided.

Run from this folder::

    python train_pl.py --epochs 80
    python train_pl.py --epochs 1 --limit_batches 20   # quick check that everything runs
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from cnn_encoder_decoder import CNNDecoder, CNNEncoder
from utils import KLD, elbo_to_bpd, sample_reparameterize


class VAE(pl.LightningModule):
    def __init__(self, num_filters: int, z_dim: int, lr: float) -> None:
        """Variational autoencoder with a CNN encoder and a 16-way categorical CNN decoder.

        Args:
            num_filters: channels of the CNN encoder/decoder.
            z_dim: dimensionality of the latent space.
            lr: Adam learning rate (used by ``configure_optimizers``).
        """
        super().__init__()
        self.save_hyperparameters()
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
        raise NotImplementedError('VAE.forward (Q1.9) is not implemented yet: write your code here, in part1/train_pl.py.')

    @torch.no_grad()
    def sample(self, batch_size: int) -> Tensor:
        """Generate new images: z ~ N(0, I), then every pixel from the decoder's softmax.

        Args:
            batch_size: number of images ``B``.

        Returns:
            long tensor ``[B, 1, 28, 28]`` with values in ``[0, 15]`` (on the model's device).
            Pixels are *sampled* from their categorical distributions, not arg-maxed.
        """
        raise NotImplementedError('VAE.sample (Q1.9) is not implemented yet: write your code here, in part1/train_pl.py.')

    # ---- provided: optimiser and logging -------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        L_rec, L_reg, bpd = self.forward(batch[0])
        size = batch[0].shape[0]
        self.log("train_reconstruction_loss", L_rec, on_step=False, on_epoch=True, batch_size=size)
        self.log("train_regularization_loss", L_reg, on_step=False, on_epoch=True, batch_size=size)
        self.log("train_ELBO", L_rec + L_reg, on_step=False, on_epoch=True, batch_size=size)
        self.log("train_bpd", bpd, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        return bpd

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        L_rec, L_reg, bpd = self.forward(batch[0])
        size = batch[0].shape[0]
        self.log("val_reconstruction_loss", L_rec, batch_size=size)
        self.log("val_regularization_loss", L_reg, batch_size=size)
        self.log("val_ELBO", L_rec + L_reg, batch_size=size)
        self.log("val_bpd", bpd, prog_bar=True, batch_size=size)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        _, _, bpd = self.forward(batch[0])
        self.log("test_bpd", bpd, batch_size=batch[0].shape[0])


class SampleAndReport(pl.Callback):
    """Saves 8x8 sample grids (before training, after epoch 10, at the end) and prints/records bpd per epoch."""

    def __init__(self, out_dir: str, epochs: int) -> None:
        super().__init__()
        self.out_dir, self.epochs = out_dir, epochs
        self.history: list[dict[str, float]] = []
        self._start = time.time()

    def save(self, pl_module: pl.LightningModule, epoch: int) -> None:
        from train_common import save_samples

        os.makedirs(self.out_dir, exist_ok=True)
        save_samples(pl_module, os.path.join(self.out_dir, f"samples_epoch_{epoch:03d}.png"))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(pl_module, 0)  # samples of the untrained model (the logger's folder exists by now)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from train_common import SAMPLE_EPOCHS

        epoch = trainer.current_epoch + 1
        metrics = trainer.callback_metrics
        train_bpd = float(metrics.get("train_bpd", float("nan")))
        val_bpd = float(metrics.get("val_bpd", float("nan")))
        seconds = time.time() - self._start
        self.history.append({"epoch": epoch, "train_bpd": train_bpd, "val_bpd": val_bpd, "seconds": seconds})
        print(f"\nepoch {epoch:3d}/{self.epochs}  train bpd {train_bpd:.4f}  val bpd {val_bpd:.4f}  ({seconds:.1f} s)")
        if epoch in SAMPLE_EPOCHS and epoch != self.epochs:
            self.save(pl_module, epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(pl_module, trainer.current_epoch)


def train_vae(args: argparse.Namespace) -> dict[str, Any]:
    """Train with Lightning, test the best-validation checkpoint; write PNGs and metrics."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from data import get_loaders
    from train_common import plot_bpd, resolve_device, save_manifold, seed_everything, write_metrics

    device = resolve_device(args.device)
    pl.seed_everything(args.seed, verbose=False)
    seed_everything(args.seed)
    # Build the model first: an unimplemented part fails here, before data loading.
    model = VAE(num_filters=args.num_filters, z_dim=args.z_dim, lr=args.lr)
    train_loader, val_loader, test_loader = get_loaders(args.dataset, args.batch_size, args.data_dir,
                                                        args.num_workers, seed=args.seed)

    logger = CSVLogger(save_dir=args.log_dir, name="lightning_logs")
    out_dir = logger.log_dir
    reporter = SampleAndReport(out_dir, args.epochs)
    checkpoint = ModelCheckpoint(save_weights_only=True, mode="min", monitor="val_bpd")
    limit = args.limit_batches if args.limit_batches > 0 else 1.0
    trainer = pl.Trainer(
        default_root_dir=args.log_dir,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_epochs=args.epochs,
        logger=logger,
        callbacks=[checkpoint, reporter],
        enable_progress_bar=True,
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        enable_model_summary=False,
        log_every_n_steps=min(50, args.limit_batches) if args.limit_batches > 0 else 50,
    )
    print(f"training on {device} | {args.dataset}: {len(train_loader.dataset)} train, "
          f"{len(val_loader.dataset)} val, {len(test_loader.dataset)} test | logs: {out_dir}")
    trainer.fit(model, train_loader, val_loader)

    ckpt = "best" if checkpoint.best_model_path else None
    test_bpd = float(trainer.test(model, dataloaders=test_loader, ckpt_path=ckpt, verbose=False)[0]["test_bpd"])
    print(f"test bpd {test_bpd:.4f}")
    if args.z_dim == 2:
        save_manifold(model.decoder, os.path.join(out_dir, "vae_manifold.png"))
    if reporter.history:
        plot_bpd(reporter.history, os.path.join(out_dir, "bpd_curve.png"), test_bpd)
    metrics = {"args": vars(args), "history": reporter.history, "test_bpd": test_bpd}
    write_metrics(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    from train_common import build_parser, run_main

    parser = build_parser("Train a VAE on 4-bit images (PyTorch Lightning).")
    parser.prog = "train_pl.py"
    return run_main(train_vae, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
