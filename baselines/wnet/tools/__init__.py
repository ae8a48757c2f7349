"""Measurement scripts for W-Net (peak memory of a training step)."""
