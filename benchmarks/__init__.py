"""Benchmarks of flameup-pandas; ``python -m benchmarks`` prints one report."""
