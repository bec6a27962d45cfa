"""pass@k: the unbiased estimator of the Codex paper, per problem, averaged over problems."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, c correct, passes).

    ``1 - C(n-c, k) / C(n, k)`` computed as a product (exact for large n, no overflow).
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(counts: Mapping[str, tuple[int, int]] | Iterable[tuple[int, int]], k: int) -> float | None:
    """Average pass@k over problems given (n, c) per problem; None if some problem has n < k."""
    pairs = list(counts.values()) if isinstance(counts, Mapping) else list(counts)
    if not pairs or any(n < k for n, _ in pairs):
        return None
    return sum(pass_at_k(n, c, k) for n, c in pairs) / len(pairs)
