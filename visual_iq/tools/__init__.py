"""Command-line front ends of the `tools/` scripts; each exposes ``main(argv) -> exit code``."""
