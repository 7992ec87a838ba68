"""Packaged suites (``korm/``, ``kss/``), importable so ``pytest --pyargs ksimkit.scenarios.suites`` finds them."""
