"""Maintained benchmarks: scripts that print and record figures (run from the repository root)."""
