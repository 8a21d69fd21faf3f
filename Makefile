# Two commands do all set-up on a fresh machine:
#   make run DATA=path/to/dataset   train + evaluate AltzCNN (creates .venv on first use)
#   make test                       run the test suite (creates .venv on first use)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?=
OUT ?= runs/altzcnn-$(shell date +%Y%m%d-%H%M%S)
EPOCHS ?= 20
BATCH ?= 32
ARGS ?=

.PHONY: run test venv clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/alzmri train --model altzcnn $(if $(DATA),--data "$(DATA)") --out "$(OUT)" --epochs $(EPOCHS) --batch-size $(BATCH) --lr 3e-4 --image-size 64 $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
