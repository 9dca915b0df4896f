"""The tools of ``visual-iq TOOL ...`` (record, demos, reward, export, curve, misses); each exposes ``main(argv) -> exit code``."""
