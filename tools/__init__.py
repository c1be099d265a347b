"""Project tooling: the demo and the sample-log regeneration."""
