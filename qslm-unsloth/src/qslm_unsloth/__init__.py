"""A trainer on Unsloth's FastLanguageModel for qslm."""

__version__ = "0.1.0"
