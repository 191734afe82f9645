"""Load test harness for callbridge: ``python -m bench.run`` (see bench/README.md)."""
