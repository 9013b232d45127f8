# make help — the targets. PYTHON=... uses an existing interpreter instead of .venv.
VENV    ?= .venv
PYTHON  ?= $(VENV)/bin/python
DATA    ?= data
SHARED  ?= ../shared

.DEFAULT_GOAL := help
.PHONY: help venv derive check-generated latex examples test fuzz data train train-cnn train-rnn hessian compare-bn bench bench-cnn bench-cells clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[runtime,test,data]"
	@touch $@

venv: $(VENV)/.installed  ## create .venv with the dependencies

# With PYTHON=... given, the caller's interpreter is used as it is.
ifeq ($(PYTHON),$(VENV)/bin/python)
SETUP := $(VENV)/.installed
else
SETUP :=
endif

derive: $(SETUP)  ## derive every module into generated/ (kernels, LaTeX, Markdown)
	$(PYTHON) -m derive

check-generated: $(SETUP)  ## fail if generated/ is not what the derivations produce
	$(PYTHON) -m derive --check

latex: $(SETUP)  ## print one module's derivation step by step: make latex MODULE=batch_norm
	$(PYTHON) -m derive show $(or $(MODULE),batch_norm)

examples: $(SETUP)  ## the course's index-gymnastics examples, step by step (files: generated/examples/)
	$(PYTHON) -m derive examples

data: $(DATA)/cifar-10-batches-py/test_batch  ## build CIFAR-10 in data/ from ../shared (no network needed)

$(DATA)/cifar-10-batches-py/test_batch:
	@if [ -f $(SHARED)/data/make-cifar10.py ]; then \
		$(PYTHON) $(SHARED)/data/make-cifar10.py $(DATA); \
	else \
		echo "no $(SHARED)/data/make-cifar10.py: training downloads CIFAR-10 through torchvision instead"; \
	fi

test: $(SETUP)  ## run the test suite on every core (builds data/ first when ../shared has it)
	@$(MAKE) --no-print-directory data PYTHON=$(PYTHON)
	$(PYTHON) -m pytest -q $$($(PYTHON) -c 'import xdist' 2>/dev/null && printf '%s' '-n auto --dist loadgroup')

fuzz: $(SETUP)  ## derive random forwards and check them against torch.autograd: make fuzz ARGS="--count 2000 --seed 1"
	$(PYTHON) -m tests.fuzzing.runner $(ARGS)

train: $(SETUP) data  ## train the default MLP on CIFAR-10: make train ARGS="--epochs 20" DATA=elsewhere/
	$(PYTHON) -m runtime.train --data_dir $(DATA) $(ARGS)

train-cnn: $(SETUP) data  ## train the course's ConvNet (small VGG, Adam) on CIFAR-10: make train-cnn ARGS="--backend torch"
	$(PYTHON) -m runtime.train_cnn --data_dir $(DATA) $(ARGS)

train-rnn: $(SETUP)  ## an LSTM (or GRU) over the derived cells on the palindrome task: make train-rnn ARGS="--model_type gru --input_length 20"
	$(PYTHON) -m runtime.train_rnn $(ARGS)

hessian: $(SETUP)  ## the top eigenvalue of a trained MLP's loss Hessian: make hessian ARGS="--run runs/mlp_..."
	$(PYTHON) -m runtime.hessian $(ARGS)

compare-bn: $(SETUP) data  ## the course's batch-norm experiment
	$(PYTHON) -m runtime.compare_batch_norm --data_dir $(DATA)

bench: $(SETUP) data  ## MLP seconds per epoch: generated runtimes vs a hand-written NumPy MLP and autograd (default, then [512 256 128] + BN)
	$(PYTHON) -m benchmarks.mlp $(ARGS)
	$(PYTHON) -m benchmarks.mlp --hidden_dims 512 256 128 --use_batch_norm $(ARGS)

bench-cnn: $(SETUP)  ## seconds per 100 ConvNet steps: generated runtimes vs torch.nn autograd (CPU; GPU when present)
	$(PYTHON) -m benchmarks.cnn $(ARGS)

bench-cells: $(SETUP)  ## one LSTM/GRU cell step, forward and backward: generated kernels vs torch.nn with autograd
	$(PYTHON) -m benchmarks.cells $(ARGS)

clean:  ## remove caches (not generated/, not data/)
	rm -rf .pytest_cache $$(find . -name __pycache__ -not -path './$(VENV)/*')
