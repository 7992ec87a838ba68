"""ksim's second example broker (``ksimkit.examples.pooled_broker``) in-process: pooled vendor accounts, its own ids,
codes and invoice shape, a clock moved by its CLI.

```python
from ksimkit.scenarios.brokers.pooled_example import pooled_example_broker

with pooled_example_broker() as (adapter, pool):       # an HttpAdapter and a PartnerPool
    results = run_scenarios(scenarios, adapter, Simulator(url, token, pool=pool))
```
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ksimkit.scenarios.brokers.http import HttpAdapter
from ksimkit.scenarios.pool import PartnerPool

__all__ = ["PACKAGE", "pooled_example_broker", "example_files"]

PACKAGE = "ksimkit.examples.pooled_broker"


def example_files() -> tuple[Path, Path]:
    """The example's ``adapter.yaml`` and ``pool.yaml``."""
    package = importlib.import_module(PACKAGE)
    folder = Path(getattr(package, "__file__", "")).parent
    return folder / "adapter.yaml", folder / "pool.yaml"


@contextmanager
def pooled_example_broker(pool_path: str | Path | None = None) -> Iterator[tuple[HttpAdapter, PartnerPool]]:
    """Start the pooled example broker on a free loopback port (its own SQLite file), configured with the pool file
    (default: its own ``pool.yaml``); yield its adapter, bound to that port, and the pool."""
    package = importlib.import_module(PACKAGE)
    adapter_file, default_pool = example_files()
    pool_file = Path(pool_path) if pool_path else default_pool
    from ksimkit.simulators.server import InProcessServer

    with tempfile.TemporaryDirectory(prefix="ksim-pooled-broker-") as tmp:
        app = package.create_app(f"sqlite:///{Path(tmp) / 'pooled-broker.db'}", str(pool_file))
        with InProcessServer(app) as server:
            yield HttpAdapter.load(adapter_file, base_url=server.url), PartnerPool.load(pool_file)
