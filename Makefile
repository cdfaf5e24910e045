# mididuet: `make test` runs everything, `make demo` plays a duet into files, `make model`
# rebuilds the shipped Chopin model. Each target creates .venv and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(or $(MIDIDUET_DATA),../shared/data/piano-midi/midis/Chopin)
PYTEST_ARGS ?=

.PHONY: test lint model demo bench clean rtmidi-system

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# A stamp per extra set, redone when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,

test: $(VENV)/.installed-train+test
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-train+test
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

model: $(VENV)/.installed-train+test
	$(BIN)/mididuet-train --data $(DATA) --out models/chopin.onnx --card models/chopin.md --arch wavenet --expressive --transpose 3 --pretrain $(patsubst %/,%,$(dir $(DATA))) --pretrain-epochs 8 --average-weights
	$(BIN)/mididuet-train answers --model models/chopin.onnx --data $(DATA) --card models/chopin.md

demo: $(VENV)/.installed-demo
	$(BIN)/mididuet demo

bench: $(VENV)/.installed-train+test
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_daemon.py
	$(BIN)/python benchmarks/bench_graph_shapes.py
	$(BIN)/python benchmarks/bench_wait.py
	$(BIN)/python benchmarks/bench_pipewire.py
	$(BIN)/python benchmarks/bench_first_fit.py

# python-rtmidi built from source against the system's libjack: the PyPI wheel bundles its own,
# which ignores pw-jack and cannot reach PipeWire's JACK. Needs (Debian/Ubuntu)
# `apt-get install libjack-jackd2-dev libasound2-dev pkg-config g++`; meson and ninja come
# from PyPI. RTMIDI_TARGET=DIR installs it into DIR instead (for PYTHONPATH; the tests' way).
RTMIDI_VERSION = $(shell $(BIN)/python -c "from importlib.metadata import version; print(version('python-rtmidi'))")
RTMIDI_TARGET ?=
rtmidi-system: | $(BIN)/python
	@pkg-config --exists jack alsa || { echo "rtmidi-system: JACK's and ALSA's headers are missing:" \
	  "apt-get install libjack-jackd2-dev libasound2-dev pkg-config g++" >&2; exit 1; }
	$(BIN)/pip install -q --force-reinstall --no-deps --no-binary python-rtmidi \
	  $(if $(RTMIDI_TARGET),--target $(RTMIDI_TARGET) --upgrade) "python-rtmidi==$(RTMIDI_VERSION)"
	$(if $(RTMIDI_TARGET),PYTHONPATH=$(RTMIDI_TARGET)) $(BIN)/python -m mididuet.daemon.ports.libjack --require-system

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache mididuet-demo
