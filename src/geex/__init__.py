"""geex: CodeGeeX re-implemented — model, training, serving, and the HumanEval-X benchmark."""

__version__ = "0.1.0"
