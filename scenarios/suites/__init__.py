"""The packaged certification suites (``korm/``, ``kss/``): data, importable so ``pytest --pyargs ksimkit.scenarios.suites`` finds them."""
