#!/usr/bin/env bash
# The serving benchmarks' GPU run, as one command on a lent GPU machine (the `device` tool), from the
# repository root:  GEEX_COMMIT=<hash> bash benchmarks/gpu_run.sh serve|keys|decode|generate [options]
# The machine has PyTorch, Triton and transformers but no network: the server's packages come as
# wheels in .device-wheels/ (pip download them here; carry the folder), HumanEval-X's Python file (for
# the keystroke replay) in .device-data/humaneval-x/ (carry it). The device's copy of the tree reports a
# stale git commit: pass the real one in GEEX_COMMIT. Results land under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = decode ] || [ "${1:-}" = generate ]; then  # the tests' packages, each wheel without its needs (numpy, packaging ... are there)
  pip install -q --no-deps --target /tmp/pydeps .device-wheels/*.whl >/dev/null 2>&1 || echo "pip failed"
else
  pip install -q --no-index --find-links .device-wheels --target /tmp/pydeps fastapi uvicorn sse-starlette \
    prometheus-client httpx pytest >/dev/null 2>&1 || echo "pip failed"
fi
export PYTHONPATH=$PWD/src:/tmp/pydeps:$PWD
export GEEX_COMMIT=${GEEX_COMMIT:-unknown}
export GEEX_HUMANEVALX=${GEEX_HUMANEVALX:-$PWD/.device-data/humaneval-x}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
case "${1:-}" in
serve)  # issue 16: CUDA tests, then throughput/TTFT/overhead at 1/8/32/64 streams against transformers
  timeout 150 python -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py -k "overlapped or graphed_rows or scheduler" \
    2>&1 | tail -5 | tee "$OUT/cuda_tests.log"
  (cd benchmarks && timeout 420 python serve.py gpu --streams 1,8,32,64 --requests 2 --new 128 --out "$OUT/serve_gpu") 2>&1 | tail -60
  ;;
keys)  # issue 17: 32 simulated typists against a 1.5B-shaped server
  (cd benchmarks && timeout 500 python serve_keystrokes.py gpu --out "$OUT/serve_keystrokes_gpu") 2>&1 | tail -40
  ;;
decode)  # decode.py on this tree, and first on a baseline's (BASE: a folder with that commit's src/ and
  # benchmarks/, e.g. from git archive) on the same card; TESTS=1: the CUDA tests before
  shift
  if [ "${TESTS:-0}" = 1 ]; then
    timeout 300 python -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/kernels tests/models/test_fusion.py \
      tests/models/test_quantize.py tests/engine/test_speculative.py 2>&1 | tee "$OUT/cuda_tests.log" | tail -12
  fi
  for tree in ${BASE:+"$BASE"} .; do
    tag=$([ "$tree" = . ] && echo new || echo base)
    PYTHONPATH=$tree/src:/tmp/pydeps timeout "${DECODE_TIMEOUT:-300}" python "$tree/benchmarks/decode.py" \
      --out "$OUT/decode-$tag" --commit "$GEEX_COMMIT-$tag" "$@" 2>&1 | tail -20
  done
  ;;
generate)  # issue 20: the samples file of one GPU and of two processes (cuda:0,cuda:1, or both on cuda:0
  # with one GPU) must be the same bytes. MODEL: a model file on the machine (the default model's GGUF
  # is 98 MB, over what one call carries: stage it in parts to /root/stash first)
  args=(--model "${MODEL:?MODEL=path of a model file}" --languages python,js --limit 16 --batch-size 8 -n 4
        --max-new-tokens 128 --temperature 0.8 --seed 1 --quiet)
  gpus=$(python -c 'import torch; print(torch.cuda.device_count())')
  devices=$([ "$gpus" -ge 2 ] && echo cuda:0,cuda:1 || echo cuda:0,cuda:0)
  python -m geex humanevalx generate --out "$OUT/one.jsonl" --device cuda "${args[@]}" || exit 1
  python -m geex humanevalx generate --out "$OUT/two.jsonl" --devices "$devices" "${args[@]}" || exit 1
  cmp "$OUT/one.jsonl" "$OUT/two.jsonl" && echo "IDENTICAL ($devices, $(wc -l < "$OUT/one.jsonl") lines)"
  gzip "$OUT"/*.jsonl
  ;;
*) echo "usage: GEEX_COMMIT=<hash> bash benchmarks/gpu_run.sh serve|keys|decode|generate [options]" >&2; exit 2 ;;
esac
ls -la "$OUT"
