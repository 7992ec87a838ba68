"""The host project's own `simulators` package: ksim must never shadow it, nor be shadowed by it."""

OWNER = "host"
