"""The model families ``geex train`` trains: each declares its ``TrainingSpec`` beside the model
(``geex.models.training``); a new family is listed here once it does."""

from __future__ import annotations

from geex.errors import UserError
from geex.models import codegeex, llama
from geex.models.training import TrainingSpec

FAMILIES: tuple[TrainingSpec, ...] = (codegeex.TRAINING, llama.TRAINING)


def trainable_presets() -> list[str]:
    return [name for spec in FAMILIES for name in spec.presets]


def spec_for_preset(preset: str) -> TrainingSpec:
    for spec in FAMILIES:
        if preset in spec.presets:
            return spec
    raise UserError(f"model.preset = {preset!r} (known: {', '.join(trainable_presets())})")


def spec_for(config) -> TrainingSpec:
    """The spec of a model's config (by its ``architecture``)."""
    return next(spec for spec in FAMILIES if spec.architecture == config.architecture)
