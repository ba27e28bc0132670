#!/usr/bin/env bash
# One prepared session on a lent GPU (15 minutes of device time, start included):
#   phase 1: GPU speed levers alone on the card (xlm-roberta-large shape, batch 32), then the issue-13 sweep
#            (the default alone first: its end-to-end time), with the test suite on CUDA beside it;
#   phase 2 (a warm or a fresh machine): the sweep alone.
# Run from the repository root with the ignored folders .whl (wheels the image lacks) and .gpu (the KLUE-RE
# train and test files, gzipped) carried along, and optionally .gpucache (tokenizers and TAPT checkpoints
# trained here, in the layout of .cache/, which the runs then reuse instead of training them on the GPU
# machine). It stops by BUDGET seconds and writes under $OUT: env.txt, speed.txt, tests.log, sweep.json,
# sweep.npz, sweep.log, gpu_util.txt (GPU utilisation every 15 s during the sweep).
# usage: [WORKERS=6] [MIN_LEFT=30] bash bench/gpu_session.sh 1|2 BUDGET [extra bench/sweep.py arguments]
set -u
PHASE=$1
BUDGET=$2
shift 2
T0=$(date +%s)
left() { local s=$((BUDGET - ($(date +%s) - T0) - ${1:-0})); [ "$s" -lt 5 ] && s=5; echo "$s"; }  # seconds left, less $1
OUT=${OUT:-/tmp/gpu-out}
KEEP=/tmp/gpu-session  # survives between the calls on a warm machine ($OUT is emptied)
mkdir -p "$OUT" "$KEEP"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HOME=/tmp/hf MPLBACKEND=Agg

if [ ! -d /tmp/site ]; then  # the wheels the image lacks, matched to its pyarrow
  major=$(python3 -c "import pyarrow; print(int(pyarrow.__version__.split('.')[0]))")
  if [ "$major" -ge 24 ]; then set_="datasets-5.2.0 dill-0.4.1 multiprocess-0.70.19"
  else set_="datasets-4.0.0 dill-0.3.8 multiprocess-0.70.16"; fi
  wheels=$(for w in $set_ hgtk optuna alembic colorlog mako sqlalchemy greenlet; do ls .whl/"$w"*.whl; done)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $wheels || exit 1
fi
export PYTHONPATH=$PWD:/tmp/site
[ -d .gpucache ] && mkdir -p .cache && cp -rn .gpucache/. .cache/
if [ ! -f /tmp/klue/test_data.csv ]; then
  mkdir -p /tmp/klue && gunzip -c .gpu/train.csv.gz > /tmp/klue/train.csv && gunzip -c .gpu/test_data.csv.gz > /tmp/klue/test_data.csv
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, datasets, pyarrow; print('torch', torch.__version__, 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
} > "$OUT/env.txt" 2>&1

if [ "$PHASE" = 1 ]; then
  bench() {  # name, seconds, extra flags: one speed measurement, alone on the GPU
    echo "== $1" >> "$KEEP/speed.txt"
    timeout "$2" python3 bench/train_speed_bench.py --train /tmp/klue/train.csv --size large --device cuda --bf16 \
      --steps 20 --batching dynamic "${@:3}" >> "$KEEP/speed.txt" 2> "$KEEP/speed_$1.err" || tail -5 "$KEEP/speed_$1.err" >> "$KEEP/speed.txt"
  }
  bench today 110
  bench fused-nosync 80 --fused --no-sync --eval-batch 512
  bench compiled 120 --fused --no-sync --eval-batch 512 --compile
  cp "$KEEP/speed.txt" "$OUT/"
  tests="tests/test_pipeline.py tests/test_runs.py tests/test_peft.py tests/test_ddp.py tests/test_model.py tests/test_levers.py
         tests/test_split.py tests/test_tapt.py tests/test_faults.py tests/test_jobs.py tests/test_ensemble.py"
  ( timeout "$(left 100)" python3 -m pytest -p no:cacheprovider -n 6 -q $tests > "$KEEP/tests.log" 2>&1
    echo "== cpu_exact tests with CUDA_VISIBLE_DEVICES= (CPU)" >> "$KEEP/tests.log"
    CUDA_VISIBLE_DEVICES= timeout "$(left 15)" python3 -m pytest -p no:cacheprovider -n 6 -q -m cpu_exact $tests >> "$KEEP/tests.log" 2>&1 ) &
  FIRST="--first default"
fi
( while sleep 15; do  # what finished so far comes back even if the call is stopped at its limit
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$KEEP/gpu_util.txt"
    cp "$KEEP/sweep.json" "$KEEP/sweep.npz" "$KEEP/sweep.log" "$KEEP/gpu_util.txt" "$OUT/" 2>/dev/null
  done ) &
COPIER=$!
timeout "$(left 5)" python3 bench/sweep.py bench/sweeps/issue13.yaml --data /tmp/klue \
  --out "$KEEP/sweep.json" --probs "$KEEP/sweep.npz" --runs /tmp/runs/sweep --workers "${WORKERS:-6}" --threads "${THREADS:-2}" \
  --deadline "$(left 25)" --min-left "${MIN_LEFT:-30}" ${FIRST:-} "$@" >> "$KEEP/sweep.log" 2>&1
kill $COPIER
wait
cp "$KEEP/gpu_util.txt" "$OUT/" 2>/dev/null
cp "$KEEP/sweep.json" "$KEEP/sweep.npz" "$KEEP/sweep.log" "$OUT/" 2>/dev/null
cp "$KEEP/tests.log" "$OUT/" 2>/dev/null
tail -c 2500 "$KEEP/sweep.log"
