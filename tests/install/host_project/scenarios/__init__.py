"""The host project's own `scenarios` package: ksim must never shadow it, nor be shadowed by it."""

OWNER = "host"
