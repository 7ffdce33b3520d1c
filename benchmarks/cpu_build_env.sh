#!/usr/bin/env bash
# An environment with PyTorch's CPU build, to measure what Gradescope's CPU-only container
# runs (setup.sh installs the CPU build there) on any machine:
#
#   benchmarks/cpu_build_env.sh                          # creates .venv-cpu (~2 min)
#   .venv-cpu/bin/python -m autograder prepare           # its own part 2 baseline (keyed by torch version)
#   .venv-cpu/bin/python benchmarks/grade_budget.py      # the budget, measured with the CPU build
#
# Where the CPU wheels of setup.sh's versions cannot be downloaded (an offline machine), it
# falls back to the CPU wheel pip finds locally (torch 2.13.0+cpu on the project machine) and
# the torchvision of that torch version. That torchvision's compiled ops are linked against
# CUDA and cannot load beside a CPU torch; its import would fail registering them, so its
# _meta_registrations module is emptied in this benchmark environment only (the grader never
# uses torchvision's compiled ops; make_grid is plain Python). The script says which it built.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
VENV="${VENV_CPU:-.venv-cpu}"
TORCH_VERSION="$(sed -n 's/^TORCH_VERSION="\(.*\)"/\1/p' setup.sh)"
TORCHVISION_VERSION="$(sed -n 's/^TORCHVISION_VERSION="\(.*\)"/\1/p' setup.sh)"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
FALLBACK_TORCH="${FALLBACK_TORCH:-2.13.0+cpu}"
FALLBACK_TORCHVISION="${FALLBACK_TORCHVISION:-0.28.0}"
say() { printf '[cpu-env] %s\n' "$*"; }

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)
if "${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" --index-url "$TORCH_CPU_INDEX" 2>/dev/null; then
  say "installed the CPU build of torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION (what setup.sh installs on Gradescope)"
  rm -f "$VENV/PROXY"
else
  say "the CPU wheels of torch $TORCH_VERSION are not reachable; using torch $FALLBACK_TORCH (local) as a proxy"
  "${PIP[@]}" "torch==$FALLBACK_TORCH" "torchvision==$FALLBACK_TORCHVISION"
  META="$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py"
  if ! "$VENV/bin/python" -c 'import torchvision' 2>/dev/null; then
    echo '# emptied by benchmarks/cpu_build_env.sh: the CUDA-linked ops cannot load beside a CPU torch' > "$META"
    say "torchvision $FALLBACK_TORCHVISION: compiled ops unavailable, fake-kernel registrations skipped (memory proxy)"
  fi
  echo "torch $FALLBACK_TORCH (CPU wheel found locally) + torchvision $FALLBACK_TORCHVISION without compiled ops, instead of torch $TORCH_VERSION CPU" > "$VENV/PROXY"
fi
"${PIP[@]}" -r requirements.txt
"$VENV/bin/python" -c 'import torch, torchvision, pytorch_lightning; assert torch.version.cuda is None, "not a CPU build"; print("[cpu-env] ready:", torch.__version__, "torchvision", torchvision.__version__)'
