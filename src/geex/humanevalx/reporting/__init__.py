"""Reporting: what evaluated runs scored. ``metrics`` (the unbiased pass@k), ``run_report`` (the
report ``evaluate`` writes beside one run's results), ``analysis`` (bootstrap intervals, budget
allocation, loading runs), ``plots`` and ``report`` (``geex humanevalx report DIR...``: runs side
by side). Reads result lines; runs nothing."""
