"""Maintenance scripts for AffectSRNet (recomputing the mean landmark shape)."""
