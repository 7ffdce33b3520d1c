#!/usr/bin/env bash
# One-command setup; also Gradescope's setup script (run once, as root, when the image is built).
#
#   ./setup.sh            # idempotent: safe to run again
#
# Installs: the Python dependencies (PyTorch + requirements.txt), the FashionMNIST
# data, and (as root) the unprivileged user that runs student code.
# Where: Gradescope (root, repository at /autograder/source) -> the system python3;
# anywhere else -> a virtual environment in ./.venv.
# Knobs (environment): AG_INSTALL=system|venv, TORCH_BUILD=auto|cpu|default,
# TORCH_CPU_INDEX (the PyTorch CPU wheel index), AG_SANDBOX_USER (default agsandbox).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
SANDBOX_USER="${AG_SANDBOX_USER:-agsandbox}"
IS_ROOT=0; [ "$(id -u)" = "0" ] && IS_ROOT=1
ON_GRADESCOPE=0; [ "$HERE" = "/autograder/source" ] && ON_GRADESCOPE=1

# --- 1. where to install ---------------------------------------------------
MODE="${AG_INSTALL:-}"
if [ -z "$MODE" ]; then
  if [ "$ON_GRADESCOPE" = 1 ]; then MODE=system; else MODE=venv; fi
fi
if [ "$ON_GRADESCOPE" = 1 ] && [ "$IS_ROOT" = 1 ] && command -v apt-get >/dev/null; then
  # Gradescope's base image may lack pip and venv support.
  python3 -m pip --version >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-pip; }
fi
case "$MODE" in
  system) PY=python3; PIP=(python3 -m pip install --no-cache-dir) ;;
  venv)
    command -v python3 >/dev/null || die "python3 is not installed; install Python 3.10 or newer first."
    if [ ! -x .venv/bin/python ]; then
      say "creating the virtual environment .venv"
      python3 -m venv .venv || die "could not create .venv (on Debian/Ubuntu: sudo apt-get install python3-venv), then rerun ./setup.sh"
    fi
    PY="$HERE/.venv/bin/python"; PIP=("$PY" -m pip install) ;;
  *) die "AG_INSTALL must be 'system' or 'venv', not '$MODE'" ;;
esac
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "Python 3.10 or newer is needed ($("$PY" --version))."
say "python: $("$PY" --version 2>&1) ($MODE install)"

# --- 2. PyTorch --------------------------------------------------------------
HAS_GPU=0; command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && HAS_GPU=1
BUILD="${TORCH_BUILD:-auto}"
if [ "$BUILD" = auto ]; then
  # The CPU build needs ~150 MB per process instead of ~380 MB: what a 768 MB container wants.
  if [ "$ON_GRADESCOPE" = 1 ] && [ "$HAS_GPU" = 0 ]; then BUILD=cpu; else BUILD=default; fi
fi
if "$PY" -c "import torch, torchvision; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null; then
  say "torch already installed"
else
  if [ "$BUILD" = cpu ]; then
    say "installing the CPU build of torch $TORCH_VERSION"
    "${PIP[@]}" -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" --index-url "$TORCH_CPU_INDEX" \
      || { say "the CPU build is not available here; installing the default build"; BUILD=default; }
  fi
  if [ "$BUILD" = default ]; then
    say "installing torch $TORCH_VERSION (default build)"
    "${PIP[@]}" -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" || die "pip could not install torch $TORCH_VERSION"
  fi
fi

# --- 3. the rest -------------------------------------------------------------
say "installing requirements.txt"
"${PIP[@]}" -q -r requirements.txt || die "pip could not install requirements.txt"
say "torch build: $("$PY" -c 'import torch; print(torch.__version__, "(CUDA " + str(torch.version.cuda) + ")" if torch.version.cuda else "(CPU only)")')"

# --- 4. FashionMNIST ---------------------------------------------------------
DEBIAN_DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DEBIAN_DATA/t10k-images-idx3-ubyte.gz" ] && [ "$IS_ROOT" = 1 ] && command -v apt-get >/dev/null; then
  say "installing FashionMNIST (Debian package dataset-fashion-mnist)"
  { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1 \
    || say "apt-get could not install dataset-fashion-mnist; trying torchvision's download"
fi
if [ -f "$DEBIAN_DATA/t10k-images-idx3-ubyte.gz" ]; then
  say "FashionMNIST: $DEBIAN_DATA"
elif [ -f data/FashionMNIST/raw/t10k-images-idx3-ubyte.gz ] || [ -f data/FashionMNIST/raw/t10k-images-idx3-ubyte ]; then
  say "FashionMNIST: $HERE/data/FashionMNIST/raw"
else
  say "downloading FashionMNIST into $HERE/data"
  "$PY" -c "from torchvision.datasets import FashionMNIST as F; F('data', train=True, download=True); F('data', train=False, download=True)" \
    || die "FashionMNIST is missing: install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or allow the download, then rerun ./setup.sh"
fi

# --- 5. the sandbox user -----------------------------------------------------
if [ "$IS_ROOT" = 1 ]; then
  # Creates the user if needed and lets it run this Python (e.g. o+x on /root when
  # the interpreter lives under /root/.pyenv): nothing else of root's becomes readable.
  "$PY" -c "from autograder.sandbox import ensure_interpreter_access as e; e('$SANDBOX_USER')" \
    || die "could not prepare the sandbox user $SANDBOX_USER"
  say "student code will run as user $SANDBOX_USER (uid $(id -u "$SANDBOX_USER")), without network"
else
  say "not root: student code will run as $(id -un) in separate processes (no user switch)"
fi

# --- 6. what every grade reuses (after the sandbox user: it grades the reference once) --
# The part 2 smoke baseline (standard training, ~5 s): stored under autograder/.cache so that
# each grade skips it (~3 s and ~70 MB less). A failure costs speed only: grades compute it.
# Also the reference's pictures for report.html (one grade of the VAE smoke training, ~20 s):
# without them a report shows the student's pictures alone.
"$PY" -m autograder prepare || say "prepare failed (see above); grades will compute the baseline themselves"

chmod +x run_autograder 2>/dev/null || true
say "done. Grade the reference with: $PY -m autograder grade solutions"
