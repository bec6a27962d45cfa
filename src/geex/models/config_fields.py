"""Typed reads of a model's configuration (``config.json``, GGUF metadata), field by field.

A configuration written by hand or by another tool can hold a string where a size belongs, a
negative or zero size, or sizes that cannot go together. Each is reported here with the file and
the field's own name (``hidden_size``, not geex's ``n_embd``), before a tensor is allocated: what
would otherwise surface as a PyTorch error from deep inside building the model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from geex.errors import UserError

_REQUIRED = object()


def read_json(path: Path, required: bool = True) -> dict:
    """A JSON object file of a model directory; ``{}`` for a missing optional one or a non-object."""
    if not required and not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    if required and not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of settings")
    return data if isinstance(data, dict) else {}


class Fields:
    """Reads values of one configuration (``raw``), naming ``where`` (e.g. ``DIR/config.json``) in errors."""

    def __init__(self, raw: Mapping, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise UserError(f"{where}: expected a JSON object of settings")
        self.raw, self.where = raw, where

    def _get(self, key: str, default):
        value = self.raw.get(key)
        if value is None:
            if default is _REQUIRED:
                raise UserError(f"{self.where} lacks {key}")
            return default, False
        return value, True

    def size(self, key: str, default=_REQUIRED, minimum: int = 1) -> int:
        """A whole number of at least ``minimum`` (layers, widths, heads, vocabulary ...)."""
        value, given = self._get(key, default)
        if not given:
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 64.0: some writers emit floats
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{self.where}: {key} must be a whole number, got {value!r}")
        if value < minimum:
            raise UserError(f"{self.where}: {key} must be at least {minimum}, got {value}")
        return value

    def number(self, key: str, default=_REQUIRED, positive: bool = True) -> float:
        """A finite number (above 0 if ``positive``): epsilons, rotary bases, scaling factors."""
        value, given = self._get(key, default)
        if not given:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{self.where}: {key} must be a number, got {value!r}")
        if positive and value <= 0:
            raise UserError(f"{self.where}: {key} must be above 0, got {value}")
        return float(value)

    def flag(self, key: str, default: bool = False) -> bool:
        value, given = self._get(key, default)
        if given and not isinstance(value, bool):
            raise UserError(f"{self.where}: {key} must be true or false, got {value!r}")
        return value

    def text(self, key: str, default=_REQUIRED) -> str:
        value, given = self._get(key, default)
        if given and not isinstance(value, str):
            raise UserError(f"{self.where}: {key} must be a string, got {value!r}")
        return value

    def mapping(self, key: str) -> dict | None:
        value, given = self._get(key, None)
        if given and not isinstance(value, Mapping):
            raise UserError(f"{self.where}: {key} must be an object, got {value!r}")
        return dict(value) if given else None

    def divides(self, whole: tuple[str, int], part: tuple[str, int], hint: str = "") -> None:
        """``part`` must divide ``whole`` (heads into a width, key/value heads into heads)."""
        (whole_key, w), (part_key, p) = whole, part
        if w % p:
            raise UserError(f"{self.where}: {whole_key} {w} is not divisible by {part_key} {p}{hint}")
