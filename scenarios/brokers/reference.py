"""ksim's reference broker (``ksimkit.examples.reference_broker``) in-process, driven through its own adapter file.

```python
from ksimkit.scenarios.brokers.reference import reference_broker

with reference_broker(defects=["payg_reduction_whole_month"]) as adapter:   # an HttpAdapter
    results = run_scenarios(scenarios, adapter, sim)
```

The example package is imported only here and only when asked for.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ksimkit.scenarios.brokers.http import HttpAdapter
from ksimkit.scenarios.errors import ReferenceBrokerUnavailable

__all__ = ["adapter_path", "reference_broker"]

PACKAGE = "ksimkit.examples.reference_broker"


def _package() -> object:
    try:
        return importlib.import_module(PACKAGE)
    except ImportError as exc:  # a broken install: the package ships in every ksimkit wheel
        raise ReferenceBrokerUnavailable(f"the reference broker ({PACKAGE}) cannot be imported: {exc}") from exc


def adapter_path() -> Path:
    """``examples/reference_broker/adapter.yaml``."""
    package = _package()
    path = Path(getattr(package, "__file__", "")).with_name("adapter.yaml")
    if not path.is_file():
        raise ReferenceBrokerUnavailable(f"the reference broker has no adapter file at {path}")
    return path


@contextmanager
def reference_broker(defects: Iterable[str] = (), *, database_url: str | None = None) -> Iterator[HttpAdapter]:
    """Start the reference broker on a free loopback port (its own SQLite file unless ``database_url``) with the
    given seeded defects for every tenant; yield its adapter, bound to that port. An unknown defect name is a
    ``ValueError``; a missing package or adapter file is :class:`ReferenceBrokerUnavailable`."""
    package = _package()
    path = adapter_path()
    from ksimkit.simulators.server import InProcessServer

    with tempfile.TemporaryDirectory(prefix="ksim-reference-broker-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'reference-broker.db'}"
        app = package.create_app(url, defects=frozenset(defects), use_env=False)  # type: ignore[attr-defined]
        with InProcessServer(app) as server:
            yield HttpAdapter.load(path, base_url=server.url)
