"""Worked examples that ship with ksim (the reference broker)."""
