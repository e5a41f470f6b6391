"""Reproducible speed measurements of sampy, printed as ratios: see README.md."""
