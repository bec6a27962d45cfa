# Quickstart targets (see README). Everything is installed by scripts/setup.sh.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
DATASET ?= ../shared/humaneval-x

.PHONY: setup run test bench
setup:
	bash scripts/setup.sh

# The main job: the embedded default model (SmolLM2-135M-Instruct) completes a function on the CPU,
# then every HumanEval-X reference solution is evaluated in the sandbox.
run: setup
	.venv/bin/geex generate --prompt "def fibonacci(n):" --language python --max-new-tokens 64
	.venv/bin/geex humanevalx evaluate canonical --dataset $(DATASET) --out geex-out/humanevalx/canonical

test:
	bash scripts/test.sh

bench: setup
	.venv/bin/python benchmarks/harness_speed.py --dataset $(DATASET)
