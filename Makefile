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

.PHONY: install train predict test clean-data

install: $(BIN)/re-pipeline

$(BIN)/re-pipeline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# make train [CONFIG=configs/x.yaml] [DATA=dir-with-train.csv] [SET="train.epochs=3 ..."]
train: install
	$(BIN)/re-pipeline train --config $(CONFIG) $(if $(DATA),--data $(DATA)) $(foreach s,$(SET),--set $(s))

# make predict RUN=runs/<run_id> DATA=test_data.csv
predict: install
	$(BIN)/re-pipeline predict $(RUN) --data $(DATA)

test: install
	$(BIN)/pytest

clean-data: install
	$(BIN)/re-pipeline clean $(or $(DATA),data/raw/train.csv) --config $(CONFIG)
