"""Hone: make a local open-weights chat model better, round after round, with honest numbers."""

__version__ = "0.1.0"
