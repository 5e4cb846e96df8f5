"""Sampling the training prompts a round learns from: the `sample` stage (hone.sample.run)."""
