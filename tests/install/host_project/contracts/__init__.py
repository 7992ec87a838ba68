"""The host project's own `contracts` package: ksim must never shadow it, nor be shadowed by it."""

OWNER = "host"
