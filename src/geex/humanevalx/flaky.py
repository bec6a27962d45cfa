"""One program's verdict from one or more runs: agreement, or flakiness.

Identical programs in an evaluation are run once for all their copies, and a verdict cached by an
earlier evaluation is reused: either would freeze the verdict of a program that passes or fails by
chance (unseeded randomness, timing, a deadline met only on a quiet machine). So a program is run
twice when it has copies in the run, and once more when a cached verdict would be reused that only
one run has seen (that run counts as the first). If the runs agree, every copy gets the verdict and
the cache counts one more agreeing run (with two, it is served without running from then on). If
they disagree the program is flaky: every copy is run on its own and keeps its own verdict, its
records say ``flaky`` with the verdicts seen, and its cache entry is dropped. A single sample with
no cached verdict runs once, as it always did: the common case costs nothing more.

A harness error is not an observation of the program: it neither makes a program flaky nor
confirms a verdict; a copy is given a harness error only when no run of this evaluation gave
anything else (it is then retried on resume, as harness errors are).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.store import CONFIRMED_RUNS

_HARNESS = Verdict.HARNESS_ERROR.value


@dataclass
class ProgramRuns:
    """The runs of one program in one evaluation, and what they decide."""

    copies: int  # samples waiting for this program
    cached: tuple[dict, int] | None = None  # the cache's outcome and how many runs agreed on it
    fresh: list[dict] = field(default_factory=list)  # outcomes of this evaluation's runs, in order
    flaky: bool = False

    @property
    def trusted(self) -> bool:
        """A cached verdict confirmed by enough runs: served without running."""
        return self.cached is not None and self.cached[1] >= CONFIRMED_RUNS

    def first_runs(self) -> int:
        """Runs to start before anything is decided."""
        if self.trusted:
            return 0
        if self.cached is not None:
            return 1  # the cached run is the other one
        return 2 if self.copies > 1 else 1

    def add(self, outcome: dict) -> int:
        """Record a finished run; returns how many more runs to start (when it turned out flaky)."""
        self.fresh.append(outcome)
        if not self.flaky and len(self.fresh) == self.first_runs() and len(self._valid_verdicts()) > 1:
            self.flaky = True
            return max(0, self.copies - len(self.fresh))
        return 0

    @property
    def done(self) -> bool:
        needed = max(self.copies, self.first_runs()) if self.flaky else self.first_runs()
        return len(self.fresh) >= needed

    def outcomes(self) -> list[dict]:
        """One outcome per copy (call once ``done``)."""
        if self.trusted:
            return [self.cached[0]] * self.copies
        if self.flaky:
            return self.fresh[: self.copies]
        return [self._consensus()] * self.copies

    def verdicts_seen(self) -> dict[str, int]:
        """Every verdict observed for the program (the cached one included) and how often."""
        seen = Counter(o["verdict"] for o in self.fresh)
        if self.cached is not None:
            seen[self.cached[0]["verdict"]] += 1
        return dict(sorted(seen.items()))

    def cache_update(self) -> tuple[dict, int] | None:
        """What the cache should now hold for the program: (outcome, agreeing runs), or None to
        drop it (flaky). Unchanged (the same tuple) when no run of this evaluation was valid."""
        if self.trusted:
            return self.cached
        if self.flaky:
            return None
        agreeing = sum(o["verdict"] != _HARNESS for o in self.fresh)
        if agreeing == 0:
            return self.cached
        return self._consensus(), agreeing + (self.cached[1] if self.cached else 0)

    def _valid_verdicts(self) -> set[str]:
        observed = [o["verdict"] for o in self.fresh]
        if self.cached is not None:
            observed.append(self.cached[0]["verdict"])
        return {v for v in observed if v != _HARNESS}

    def _consensus(self) -> dict:
        """This evaluation's first run that is not a harness error (else its first run)."""
        return next((o for o in self.fresh if o["verdict"] != _HARNESS), self.fresh[0])
