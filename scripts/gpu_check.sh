#!/usr/bin/env bash
# Prove every CUDA path and measure the GPU targets in one command, on a machine with a CUDA PyTorch and no
# package registry; or, with --device cpu --tiny, run every stage at toy size on the CPU (make test does).
#
#   scripts/gpu_check.sh --prepare             where a registry is reachable: wheels of the pure-Python
#                                              dependencies (Python 3.12, manylinux) into .gpu-wheels/
#   scripts/gpu_check.sh [--out DIR]           on the GPU machine (make gpu-check): within --budget seconds
#   scripts/gpu_check.sh --device cpu --tiny   the dry run, under 2 minutes
#
# Options: --device cuda|cpu (default cuda), --tiny, --out DIR (default runs/gpu-check/<UTC time>-<device>),
# --budget SECONDS (default 470 on a GPU, 110 with --tiny), --python PATH (default: $PYTHON, else .venv/bin/python
# or python3, the first that imports torch), --wheels DIR (default .gpu-wheels), --prepare [--python-version X.Y],
# --tar FILE (also pack the results folder into one .tar.gz, for a runner that copies back only a few files).
#
# On the GPU machine omnitok is not installed: src/ and .gpu-site/ (the wheels this interpreter lacks, unpacked
# by scripts/gpu_check_helpers.py install; pip is never run) go on PYTHONPATH. Stages, in order, each under its
# own cap (`timeout`, whole process group) and never past the budget:
#   tests         pytest -m gpu tests/gpu                       -> gpu_tests.json (outcome and figures per test)
#   generate_B/L  benchmarks/generate.py, batch 1 and 64 vs HF  -> generate_B.json, generate_L.json
#   train_lm_B/L  benchmarks/train_lm.py, MFU, compiled         -> train_lm_B.json, train_lm_L.json
#   quantizers    benchmarks/quantizers.py --device cuda        -> quantizers.json
# With --tiny the benchmarks run once each on the debug presets, and with --device cpu the GPU tests' bodies
# run on the CPU (their plumbing; what compares CUDA with the CPU then compares the CPU with itself). Every stage writes <stage>.log; env.json holds
# the GPU, driver, torch and peers, stamped into every result; summary.json and the table printed at the end hold
# the stage outcomes and the figures against the targets. Exit status 0 when every stage succeeded.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
HELPERS="$ROOT/scripts/gpu_check_helpers.py"

DEVICE=cuda TINY=0 OUT="" BUDGET="" PY="${PYTHON:-}" WHEELS="$ROOT/.gpu-wheels" PREPARE=0 PYVER=3.12 TAR=""
while (($#)); do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --python) PY="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    --python-version) PYVER="$2"; shift 2 ;;
    --tar) TAR="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check: --device must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac

if [[ -z "$PY" ]]; then
  for cand in "$ROOT/.venv/bin/python" python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi

if ((PREPARE)); then
  PREP_PY="${PY:-python3}"
  exec "$PREP_PY" "$HELPERS" prepare --dest "$WHEELS" --python-version "$PYVER"
fi
if [[ -z "$PY" ]]; then
  echo "gpu_check: no Python with torch found (tried \$PYTHON, .venv/bin/python, python3, python); pass --python" >&2
  exit 2
fi

T_START=$(date +%s)
BUDGET="${BUDGET:-$( ((TINY)) && echo 110 || echo 470)}"
DEADLINE=$((T_START + BUDGET))
MIN_STAGE=10  # a stage with less time left than this is skipped, not started
SUFFIX="$DEVICE$( ((TINY)) && echo -tiny)"
OUT="${OUT:-$ROOT/runs/gpu-check/$(date -u +%Y%m%d-%H%M%S)-$SUFFIX}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
: >"$OUT/stages.jsonl"
echo "gpu_check: device $DEVICE$( ((TINY)) && echo ' (tiny)'), budget ${BUDGET}s, python $PY, results in $OUT"

# ----- omnitok and its dependencies on the path, without pip ---------------------------------------------
SITE="$ROOT/.gpu-site"
if [[ -f "$WHEELS/manifest.json" ]]; then
  "$PY" "$HELPERS" install --wheels "$WHEELS" --site "$SITE" >"$OUT/install.log" 2>&1 || {
    echo "gpu_check: unpacking the wheels failed:" >&2; cat "$OUT/install.log" >&2; exit 2; }
  echo "gpu_check: $(grep -c unpacked "$OUT/install.log") wheels unpacked into $SITE, $(grep -c kept "$OUT/install.log") already present (install.log)"
  export PYTHONPATH="$ROOT/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "gpu_check: no $WHEELS/manifest.json: the interpreter's own packages are used (scripts/gpu_check.sh --prepare makes the wheels)"
  export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TOKENIZERS_PARALLELISM=false
((TINY)) && [[ "$DEVICE" == cpu ]] && export OMP_NUM_THREADS=1

if ! "$PY" "$HELPERS" env --out "$OUT/env.json" --device "$DEVICE" >"$OUT/env.log" 2>&1; then
  cat "$OUT/env.log" >&2
  exit 2
fi
PEERS=$("$PY" -c "import json,sys; p=json.load(open(sys.argv[1]))['peers']; print(' '.join(f'{k}={v or \"MISSING\"}' for k,v in p.items()))" "$OUT/env.json")
echo "gpu_check: peers: $PEERS"
[[ "$PEERS" == *MISSING* ]] && echo "gpu_check: a missing peer is skipped by its stage, which measures omnitok alone and says so in its log and JSON"

FAILED=0
run_stage() {  # name cap_seconds command...
  local name="$1" cap="$2"; shift 2
  local left=$((DEADLINE - $(date +%s)))
  if ((left < MIN_STAGE)); then
    echo "== $name: skipped, ${left}s of the ${BUDGET}s budget left"
    printf '{"stage": "%s", "status": "skipped: budget spent", "seconds": 0, "cap_s": 0}\n' "$name" >>"$OUT/stages.jsonl"
    FAILED=1
    return
  fi
  ((cap > left)) && cap=$left
  echo "== $name (cap ${cap}s): $*" | cut -c1-300
  local t0 ms rc status secs
  t0=$(date +%s%N)
  timeout --kill-after=15 "$cap" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  secs=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
  if ((rc == 0)); then status=ok
  elif ((rc == 124 || rc == 137)); then status="timed out after ${cap}s"; FAILED=1
  else status="failed (exit $rc)"; FAILED=1
  fi
  printf '{"stage": "%s", "status": "%s", "rc": %d, "seconds": %.1f, "cap_s": %d, "log": "%s.log"}\n' \
    "$name" "$status" "$rc" "$secs" "$cap" "$name" >>"$OUT/stages.jsonl"
  echo "   $status in $((ms / 1000))s; last lines of $name.log:"
  grep -v -E '^\s*$|it/s\]|s/it\]' "$OUT/$name.log" | tail -n "$( [[ $status == ok ]] && echo 4 || echo 12)" | cut -c1-240 | sed 's/^/   | /'
}

# ----- stages --------------------------------------------------------------------------------------------
COMPILE=--compile
if [[ "$DEVICE" == cuda ]] && ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
  COMPILE=""
  echo "gpu_check: no C compiler (triton needs one for torch.compile): train_lm runs eager"
fi

# the dry run on a CPU runs the GPU tests' bodies there (OMNITOK_GPU_TESTS_DEVICE, tests/gpu/conftest.py)
run_stage tests "$( ((TINY)) && echo 60 || echo 150)" env OMNITOK_TEST_REPORT="$OUT/gpu_tests.json" \
  OMNITOK_GPU_TESTS_DEVICE="$DEVICE" "$PY" -m pytest -q -m gpu -rs -p no:cacheprovider tests/gpu

if ((TINY)); then
  run_stage generate_debug 40 "$PY" benchmarks/generate.py --device "$DEVICE" --preset debug \
    --override qk_norm=false max_seq_len=320 --text-size 256 --image-size 512 --batches 1,2 --naive-steps 4 \
    --repeats 1 --out "$OUT/generate_debug.json"
  run_stage train_lm_debug 40 "$PY" benchmarks/train_lm.py --device "$DEVICE" --preset debug --gpu-presets debug \
    --batch 2 --seq 32 --steps 2 --warmup 1 --out "$OUT/train_lm_debug.json"
  run_stage quantizers 50 "$PY" benchmarks/quantizers.py --device "$DEVICE" --n 1024 --only "VQ K=1024 D=8" \
    --steps 5 --usage-batch 256 --usage-eval 1024 --time-budget 0.5 --repeats 1 --clusters 64 --usage-budget 2 \
    --threads 1 --child-timeout 40 --no-docs --out "$OUT/quantizers.json"
else
  for preset in B L; do
    run_stage "generate_$preset" "$([[ $preset == B ]] && echo 75 || echo 100)" "$PY" benchmarks/generate.py \
      --device cuda --preset "$preset" --batches 1,64 --naive-steps 0 --repeats 3 --out "$OUT/generate_$preset.json"
  done
  for preset in B L; do
    # compiling the whole model (train.compile=true, as the presets train) takes most of these caps
    run_stage "train_lm_$preset" "$([[ $preset == B ]] && echo 120 || echo 180)" "$PY" benchmarks/train_lm.py \
      --device cuda --gpu-presets "$preset" $COMPILE --steps 10 --warmup 3 --out "$OUT/train_lm_$preset.json"
  done
  # last: it takes what is left of the budget (its JSON is written after every case)
  run_stage quantizers 300 "$PY" benchmarks/quantizers.py --device cuda --no-docs --out "$OUT/quantizers.json" \
    --only "K=16384" "K=262144 D=256" "RVQ" "FSQ" "LFQ 2^16" "BSQ 2^16" --time-budget 2 --repeats 5 --steps 200 \
    --usage-budget 10 --max-call-s 20 --child-timeout 60
fi

# ----- the record --------------------------------------------------------------------------------------
"$PY" "$HELPERS" finish --out "$OUT" || FAILED=1
if [[ -n "$TAR" ]]; then
  tar czf "$TAR" -C "$(dirname "$OUT")" "$(basename "$OUT")" && echo "gpu_check: packed into $TAR"
fi
echo
echo "gpu_check: $(( $(date +%s) - T_START ))s; every result (JSON, with GPU, driver and torch version) and log is in"
echo "  $OUT"
exit "$FAILED"
