"""Calibrate check 1.8.3's decoder-alone fit: final per-pixel cross-entropy of decoders.

Runs ``drivers_part1_funcs.decoder_fit`` (the check's worker-side procedure) in this process on
the reference ``CNNDecoder``, on correct decoders of other shapes, and on squashed ones::

    .venv/bin/python tools/calibrate_decoder_fit.py [--seeds 0 1 2 3 4]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "solutions" / "part1")]


class Squashed(nn.Module):
    def __init__(self, inner: nn.Module, fn) -> None:
        super().__init__()
        self.inner, self.fn = inner, fn

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(self.inner(z))


class MLPDecoder(nn.Module):  # a correct decoder of another shape
    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, 128), nn.ReLU(), nn.Linear(128, 16 * 784))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 16, 28, 28)


class BNDecoder(nn.Module):  # a correct CNN decoder with batch norm and upsampling
    def __init__(self, z_dim: int, c: int = 16) -> None:
        super().__init__()
        self.c = c
        self.fc = nn.Linear(z_dim, 2 * c * 7 * 7)
        self.net = nn.Sequential(nn.BatchNorm2d(2 * c), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(2 * c, c, 3, padding=1),
                                 nn.BatchNorm2d(c), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(c, 16, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, 2 * self.c, 7, 7))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    torch.set_num_threads(1)
    from autograder import config
    from autograder.checks.part1 import drivers_part1_funcs as drv
    from autograder.checks.part1.test_cnn import fit_target, latents
    import cnn_encoder_decoder as ref

    s = config.load().threshold("part1.functions.decoder_fit")
    makers = {
        "reference": lambda: ref.CNNDecoder(num_filters=16, z_dim=8),
        "mlp (correct)": lambda: MLPDecoder(8),
        "batchnorm cnn (correct)": lambda: BNDecoder(8),
        "log_softmax output (correct)": lambda: Squashed(ref.CNNDecoder(num_filters=16, z_dim=8), lambda x: torch.log_softmax(x, 1)),
        "tanh output": lambda: Squashed(ref.CNNDecoder(num_filters=16, z_dim=8), torch.tanh),
        "2*tanh output": lambda: Squashed(ref.CNNDecoder(num_filters=16, z_dim=8), lambda x: 2 * torch.tanh(x)),
        "sigmoid output": lambda: Squashed(ref.CNNDecoder(num_filters=16, z_dim=8), torch.sigmoid),
        "softmax output": lambda: Squashed(ref.CNNDecoder(num_filters=16, z_dim=8), lambda x: torch.softmax(x, 1)),
    }
    print(f"steps {s['steps']}, lr {s['lr']}: final per-pixel cross-entropy (min / max over seeds {args.seeds}), logit span")
    for name, make in makers.items():
        ce, spans = [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            r = drv.decoder_fit(make(), latents(8, 8, seed=5), fit_target(), int(s["steps"]), float(s["lr"]))
            ce.append(r["losses"][-1])
            spans.append(r["logit_span"])
        print(f"  {name:30s} {min(ce):.3f} / {max(ce):.3f}   span {min(spans):.2f} / {max(spans):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
