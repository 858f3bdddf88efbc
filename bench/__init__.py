"""`livefit bench`: the job measured against the in-process limit and the naive baseline."""
