"""Worked examples that ship with ksim: the reference broker (a tenant per scenario) and the pooled example broker
(pooled partners, its own ids, codes, CLI clock and invoices)."""
