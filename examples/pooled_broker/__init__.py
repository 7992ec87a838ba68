"""A second example broker, certified as it is: pooled vendor credentials read once from a file, its own order
numbers, its own error codes, a clock moved by its own CLI and invoices in its own shape (README.md beside this
file). ``create_app(database_url, pool_path)`` gives its Flask app; ``python -m ksimkit.examples.pooled_broker``
serves it or moves a company's clock.
"""

from ksimkit.examples.pooled_broker.app import create_app

__all__ = ["create_app"]
