"""The host's own module of the name ksim's plugin once imported as a top-level ``scenarios.collect``."""

OWNER = "host"
