"""Flink job entry points: what `flink run -py` is given."""
