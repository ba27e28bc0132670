# re_pipeline: every target installs into .venv first when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml
DATA ?=
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HOME := $(CURDIR)/.hf_home
export TOKENIZERS_PARALLELISM := false

.PHONY: install lock lint test-latest test-full-data train tapt predict ensemble hpsearch jobs bench test clean-data

# Installs exactly what requirements.lock pins (versions and hashes, every dependency), then the project
# itself without dependencies, then checks the result with `pip check`.
# TORCH=locked (default): the lock's torch, the CPU wheel. TORCH=keep: keep the torch already in .venv
# (your CUDA build, see the README) and install everything else from the lock.
LOCK := requirements.lock
TORCH ?= locked
install: $(BIN)/re-pipeline

$(BIN)/re-pipeline: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(filter keep,$(TORCH)),awk '/^torch==/ {skip = 1; next} skip && /^ / {next} {skip = 0; print}' $(LOCK) > $(VENV)/lock-keep-torch.txt)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(if $(filter keep,$(TORCH)),$(VENV)/lock-keep-torch.txt,$(LOCK))
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	@touch $@

# make lock: re-resolve requirements.lock after a change to pyproject.toml, keeping every pin that still fits;
# make lock UPGRADE=1: the newest versions pyproject.toml allows. pip-tools runs in its own .venv-lock.
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet pip-tools==7.6.2)
	.venv-lock/bin/pip-compile --quiet $(if $(UPGRADE),--upgrade) --generate-hashes --allow-unsafe --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

# make test-latest: the suite against the newest releases pyproject.toml allows (torch stays the locked CPU
# wheel), in a throwaway .venv-latest; prints which versions differ from the lock. Try upgrades on purpose.
test-latest:
	rm -rf .venv-latest && $(PYTHON) -m venv .venv-latest
	grep -m1 '^torch==' $(LOCK) | cut -d' ' -f1 > .venv-latest/torch.txt
	.venv-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -c .venv-latest/torch.txt -e '.[dev]'
	.venv-latest/bin/python tools/lock_diff.py $(LOCK)
	.venv-latest/bin/pytest

# make train [CONFIG=configs/x.yaml] [DATA=dir-with-train.csv] [SET="train.epochs=3 ..."] [NPROC=2]
# NPROC > 1 (or TORCHRUN_ARGS) trains data parallel through torchrun; several machines sharing runs/ and .cache/:
# TORCHRUN_ARGS="--nnodes=2 --node_rank=0 --master_addr=host0 --master_port=29500" on each (its node_rank).
# The batch size is per process: halve train.batch_size with NPROC=2 to keep the effective batch.
NPROC ?= 1
TORCHRUN_ARGS ?=
TRAINER = $(if $(or $(filter-out 1,$(NPROC)),$(TORCHRUN_ARGS)),$(BIN)/torchrun --nproc_per_node=$(NPROC) $(TORCHRUN_ARGS) -m re_pipeline,$(BIN)/re-pipeline)
train: install
	$(TRAINER) train --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(foreach s,$(SET),--set $(s))

# make tapt [CONFIG=...] [DATA=...] [SET=...]: masked-LM pretraining alone, into runs/<run_id>-tapt/model
tapt: install
	$(BIN)/re-pipeline tapt --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(foreach s,$(SET),--set $(s))

# make predict RUN=runs/<run_id> DATA=test_data.csv
predict: install
	$(BIN)/re-pipeline predict $(RUN) --data $(DATA)

# make ensemble MEMBERS="runs/a runs/b sub.csv" [METHOD=mean|weighted|fit-f1|fit-auprc] [WEIGHTS=0.5,0.3,0.2] [POOL=mean|log]
ensemble: install
	$(BIN)/re-pipeline ensemble $(MEMBERS) --method $(or $(METHOD),mean) --pool $(or $(POOL),mean) $(if $(WEIGHTS),--weights $(WEIGHTS))

# make hpsearch CONFIG=configs/x.yaml [TRIALS=20] [STORAGE=sqlite:///runs/hpsearch/x.db] [STUDY=x]: the config's search.space
hpsearch: install
	$(BIN)/re-pipeline hpsearch --config $(CONFIG) --trials $(or $(TRIALS),20) $(if $(STORAGE),--storage $(STORAGE)) $(if $(STUDY),--study $(STUDY)) $(if $(DATA),--data $(DATA)) $(foreach s,$(SET),--set $(s))

# make jobs CONFIGS="configs/a.yaml configs/b.yaml" [WORKERS=2] [FOLDS=1] [ENSEMBLE=mean|fit-f1|fit-auprc|none]
jobs: install
	$(BIN)/re-pipeline jobs $(CONFIGS) --workers $(or $(WORKERS),1) $(if $(FOLDS),--folds) --ensemble $(or $(ENSEMBLE),mean) $(if $(DATA),--data $(DATA)) $(foreach s,$(SET),--set $(s))

# make bench [DATA=../shared/data/klue-re] [BENCH_ARGS="--only speed --repeats 5"]: every figure, BENCHMARKS.md rewritten.
# The whole suite trains the default config once (about an hour on 2 cores) plus the one-epoch ablation and PEFT variants;
# finished runs with the same resolved config are reused.
bench: install
	$(BIN)/python bench/suite.py --data $(or $(DATA),../shared/data/klue-re) $(BENCH_ARGS)

# make test-full-data: the checks over all of ../shared/data that `make test` leaves out (tens of minutes)
test-full-data: install
	$(BIN)/pytest -m full_data

# On a machine with a GPU, the tests marked cpu_exact (bit-exact only on CPU) run in a second pass on the CPU.
test: install
	$(BIN)/pytest
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		echo "GPU visible: the cpu_exact tests again, on the CPU"; CUDA_VISIBLE_DEVICES= $(BIN)/pytest -m cpu_exact; fi

# make lint: ruff's lint rules and formatting (pyproject.toml), as CI runs them; `ruff format .` fixes the format.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-data: install
	$(BIN)/re-pipeline clean $(or $(DATA),data/raw/train.csv) --config $(CONFIG)
