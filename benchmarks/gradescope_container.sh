#!/usr/bin/env bash
# A grade inside a container the size of Gradescope's default: 0.5 CPU (CFS quota 50 ms per
# 100 ms), 768 MB of memory, swap off; exceeding the memory limit invokes the kernel's OOM
# killer, as there. Runs ./run_autograder on a submission laid out as Gradescope does
# (AG_ROOT=<tmp>/{submission,results}) with the CPU build of PyTorch, and reports wall time,
# the control group's peak memory and whether the OOM killer fired.
#
#   sudo benchmarks/gradescope_container.sh                 # every case below
#   sudo benchmarks/gradescope_container.sh reference bomb  # some of them
#
# Cases: reference (solutions/), handout (student/, untouched), bomb (the reference with a
# sample_reparameterize that allocates without end: the bomb must die, the grade complete),
# uva2024 (tests/template_style/uva2024 in its edition), uva2021 (the same part 1 in the 2021
# layout: part2/, fmnist), ift6135 (tests/template_style/ift6135: flat q1/q2/q3_solution.py, the
# 2022 homework), ift6135_2020 (its q1 and the 2020 q2_solution.py).
# A case fails when the grade is killed, writes no valid results, is
# missing checks, exceeds the grader's own run_budget_s or MAX_WALL_S (default 240), or (all
# but bomb) the OOM killer fired. Exit status: the number of failed cases.
#
# Needs root and the cgroup v1 `cpu` and `memory` controllers (or cgroup v2 with both).
# Knobs: AG_PYTHON (default .venv-cpu/bin/python, made by benchmarks/cpu_build_env.sh; else
# .venv), CPU_QUOTA_US (50000), CPU_PERIOD_US (100000), MEM_MB (768), MAX_WALL_S (240), KEEP=1
# (keep every case's AG_ROOT, not only failed ones).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
CPU_QUOTA_US="${CPU_QUOTA_US:-50000}"
CPU_PERIOD_US="${CPU_PERIOD_US:-100000}"
MEM_MB="${MEM_MB:-768}"
MAX_WALL_S="${MAX_WALL_S:-240}"
PY="${AG_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv-cpu/bin/python ]; then PY="$HERE/.venv-cpu/bin/python"; else PY="$HERE/.venv/bin/python"; fi
fi
say() { printf '[container] %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { say "needs root (control groups)"; exit 2; }
BUDGET_S="$("$PY" -c 'from autograder import config; print(config.load().grader.get("run_budget_s", 420))')"

# --- the control group -------------------------------------------------------
V2=0; [ -f /sys/fs/cgroup/cgroup.controllers ] && V2=1
make_group() {  # $1: name -> prints the directories to join
  if [ "$V2" = 1 ]; then
    local g="/sys/fs/cgroup/$1"
    mkdir -p "$g" && echo "$CPU_QUOTA_US $CPU_PERIOD_US" > "$g/cpu.max" && echo $((MEM_MB << 20)) > "$g/memory.max" \
      && echo 0 > "$g/memory.swap.max" && echo "$g"
  else
    local c="/sys/fs/cgroup/cpu/$1" m="/sys/fs/cgroup/memory/$1"
    mkdir -p "$c" "$m" || return 1
    echo "$CPU_PERIOD_US" > "$c/cpu.cfs_period_us" && echo "$CPU_QUOTA_US" > "$c/cpu.cfs_quota_us" || return 1
    echo $((MEM_MB << 20)) > "$m/memory.limit_in_bytes" || return 1
    [ -f "$m/memory.memsw.limit_in_bytes" ] && echo $((MEM_MB << 20)) > "$m/memory.memsw.limit_in_bytes"  # swap off
    echo 0 > "$m/memory.swappiness" 2>/dev/null
    echo "$c $m"
  fi
}
peak_mb() {  # $@: the group's directories
  local f
  for d in "$@"; do
    for f in memory.max_usage_in_bytes memory.peak; do
      [ -f "$d/$f" ] && { echo $(( $(cat "$d/$f") >> 20 )); return; }
    done
  done
  echo "?"
}
oom_kills() {
  local d
  for d in "$@"; do
    for f in memory.oom_control memory.events; do
      [ -f "$d/$f" ] && { awk '$1 == "oom_kill" {print $2; found=1} END {if (!found) print 0}' "$d/$f"; return; }
    done
  done
  echo 0
}

# --- the cases -----------------------------------------------------------------
prepare_case() {  # $1: case, $2: the submission folder to fill; prints the edition ('' = default)
  local case="$1" dest="$2"
  case "$case" in
    reference) cp -r solutions/part1 solutions/part2 solutions/part3 "$dest"/ ;;
    handout) cp -r student/part1 student/part2 student/part3 "$dest"/ ;;
    bomb)
      cp -r solutions/part1 solutions/part2 solutions/part3 "$dest"/
      "$PY" - "$dest/part1/utils.py" <<'PYEOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
bomb = ("    hoard = []\n    while True:  # a memory bomb: 64 MB more each step, never freed\n"
        "        hoard.append(torch.ones(16 << 20))\n")
text, n = re.subn(r"(def sample_reparameterize\([^)]*\)[^:]*:\n(?:    \"\"\"[\s\S]*?\"\"\"\n)?)", r"\1" + bomb.replace("\\", "\\\\"), text, count=1)
assert n == 1, "sample_reparameterize not found"
open(path, "w").write(text)
PYEOF
      ;;
    uva2024) cp -r tests/template_style/uva2024/part1 tests/template_style/uva2024/part2 "$dest"/; echo uva2024 ;;
    uva2021)
      mkdir -p "$dest/part2"
      for f in utils.py cnn_encoder_decoder.py train_pl.py; do
        sed -e 's/from mnist import mnist/from fmnist import fmnist/' -e 's/= mnist(/= fmnist(/' \
          "tests/template_style/uva2024/part1/$f" > "$dest/part2/$f"
      done
      echo uva2021 ;;
    ift6135) cp tests/template_style/ift6135/q*_solution.py "$dest"/; echo ift6135 ;;
    ift6135_2020)
      cp tests/template_style/ift6135/q1_solution.py tests/template_style/ift6135_2020/q2_solution.py "$dest"/
      echo ift6135_2020 ;;
    *) say "unknown case $case"; return 1 ;;
  esac
}

run_case() {
  local case="$1" ag edition dirs start end wall status peak kills verdict=pass why=""
  ag="$(mktemp -d /tmp/agbench.XXXXXX)"; chmod 755 "$ag"
  mkdir -p "$ag/submission" "$ag/results"
  edition="$(prepare_case "$case" "$ag/submission")" || return 1
  # What setup.sh does when the image is built (outside the limits): the part 2 baseline.
  "$PY" -m autograder prepare ${edition:+--edition "$edition"} >/dev/null 2>&1 || true
  dirs="$(make_group "agbench_$$_$case")" || { say "could not create the control group"; return 1; }
  start=$(date +%s.%N)
  # The subshell joins the group before it starts the grade: every process it makes is inside.
  (
    for d in $dirs; do echo $BASHPID > "$d/cgroup.procs"; done
    AG_ROOT="$ag" AG_PYTHON="$PY" AG_EDITION="$edition" exec bash ./run_autograder > "$ag/log.txt" 2>&1
  )
  status=$?
  end=$(date +%s.%N)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
  # shellcheck disable=SC2086
  peak=$(peak_mb $dirs); kills=$(oom_kills $dirs)
  local check
  check="$("$PY" - "$ag/results/results.json" "$case" "$edition" <<'PYEOF'
import json, sys
from autograder import config
path, case, edition = sys.argv[1:4]
try:
    results = json.load(open(path))
except Exception as exc:
    print(f"no valid results ({type(exc).__name__})"); sys.exit()
cfg = config.load(edition=edition or None)
want = sum(1 for c in cfg.checks.values() if cfg.selected(c))
tests = results.get("tests", [])
score = results.get("score")
if not isinstance(score, (int, float)) or not tests:
    print("results without a score or tests"); sys.exit()
if len(tests) != want:
    print(f"{len(tests)} of {want} checks in the results"); sys.exit()
if any("not run: the grading run's time budget" in t.get("output", "") for t in tests):
    print("checks skipped: the run's time budget was spent"); sys.exit()
total = sum(t.get("max_score", 0) for t in tests)
print(f"ok {score:g}/{total:g}")
PYEOF
)"
  [ "$status" = 0 ] || { verdict=FAIL; why="run_autograder exited $status (killed?)"; }
  case "$check" in ok*) ;; *) verdict=FAIL; why="${why:+$why; }$check" ;; esac
  if [ "$kills" != 0 ] && [ "$case" != bomb ]; then verdict=FAIL; why="${why:+$why; }the OOM killer fired $kills time(s)"; fi
  awk -v w="$wall" -v m="$MAX_WALL_S" -v b="$BUDGET_S" 'BEGIN {exit !(w > m || w > b)}' && {
    verdict=FAIL; why="${why:+$why; }$wall s is over the limit (MAX_WALL_S $MAX_WALL_S, run_budget_s $BUDGET_S)"; }
  printf '%-10s %-5s wall %7s s  peak %5s MB  oom kills %s  score %s%s\n' "$case" "$verdict" "$wall" "$peak" "$kills" \
    "${check#ok }" "${why:+  ($why)}"
  for d in $dirs; do rmdir "$d" 2>/dev/null; done
  if [ "$verdict" = pass ] && [ -z "${KEEP:-}" ]; then rm -rf "$ag"; else say "kept $ag for inspection (log.txt, results/)"; fi
  [ "$verdict" = pass ]
}

CASES=("$@"); [ ${#CASES[@]} = 0 ] && CASES=(reference handout bomb uva2024 uva2021 ift6135 ift6135_2020)
say "python $PY ($("$PY" -c 'import torch; print(torch.__version__)')); limits: ${CPU_QUOTA_US}/${CPU_PERIOD_US} us CPU, ${MEM_MB} MB, swap off; run_budget_s ${BUDGET_S}"
failed=0
for c in "${CASES[@]}"; do run_case "$c" || failed=$((failed + 1)); done
say "$failed case(s) failed"
exit "$failed"
