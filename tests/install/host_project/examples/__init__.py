"""The host project's own `examples` package: ksim must never shadow it, nor be shadowed by it."""

OWNER = "host"
