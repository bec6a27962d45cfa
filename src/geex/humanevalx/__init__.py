"""HumanEval-X: the benchmark pipeline, over ``execution/`` (runs programs) and under ``reporting/``.

The pipeline, in the order data flows through it:

- ``problem`` — one task in one language; ``dataset`` loads them (local or the Hub) and ``fixes``
  corrects the published defects;
- ``assembly`` — a problem and a completion become a ``Program`` (and the generation and translation
  prompts);
- ``backends`` and ``generate`` — where completions come from: a model's samples, resumable;
- ``samples`` — reading a samples file;
- ``evaluate`` — samples → programs → sandboxed runs (``execution``) → ``store`` (results and the
  verdict cache, keyed by ``identity``, with ``flaky`` re-runs) → the run's report
  (``reporting.run_report``), in a directory claimed by ``outdir``;
- ``doctor`` — ``geex doctor``: every toolchain checked by running a program through the same path.
"""
