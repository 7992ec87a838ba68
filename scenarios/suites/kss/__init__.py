"""The packaged kss certification suite (scenario files; importable for ``pytest --pyargs``)."""
