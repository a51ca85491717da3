"""Synthetic data and measurement: the generator with planted typologies and labels, evaluate, the quality and speed benchmarks."""
