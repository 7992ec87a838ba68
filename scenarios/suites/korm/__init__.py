"""The packaged korm certification suite (scenario files; importable for ``pytest --pyargs``)."""
