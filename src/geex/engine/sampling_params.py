"""How the next token is chosen, as data: light enough (no torch) for the command line to declare
its sampling options from these fields (``geex.options``) while it parses.

The library's defaults are the OpenAI API's (temperature 1, top-p 1: what a caller of the engine or
of ``geex serve`` gets without asking); the command line's are CodeGeeX's pass@1 setting
(temperature 0.2, top-p 0.95). Both are declared on the field. The sampler itself is
``geex.engine.sampling``."""

from __future__ import annotations

from dataclasses import dataclass

from geex.errors import UserError
from geex.options import count, option, positive_number, probability


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = option(
        1.0, "--temperature", "sampling temperature: lower is more deterministic (default {default}, CodeGeeX's "
        "setting for pass@1; 0.8 for diverse samples)", parse=positive_number, command_default=0.2)
    top_k: int = option(0, "--top-k", "sample from the k most likely tokens only (default {default}: off)",
                        parse=count)  # 0: off
    top_p: float = option(
        1.0, "--top-p", "nucleus sampling: sample from the most likely tokens that make up this much probability "
        "(default {default}; 1: off)", parse=probability, command_default=0.95)  # 1.0: off
    greedy: bool = option(False, "--greedy", "argmax instead of sampling")

    def __post_init__(self) -> None:
        if not self.greedy and not self.temperature > 0:
            raise UserError(f"`temperature` must be > 0 (or use `greedy`), got {self.temperature}")
        if self.top_k < 0:
            raise UserError(f"`top_k` must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"`top_p` must be in (0, 1], got {self.top_p}")
