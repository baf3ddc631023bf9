"""Document sources, registered by name. Importing this package registers all of them."""

from ssae_utils.data.sources.registry import (
    KINDS,
    SOURCES,
    Source,
    get_source,
    list_sources,
    register_source,
)

# Importing the modules runs their @register_source decorators.
from ssae_utils.data.sources import insults, news, paper, shakespeare, smoke, sympy_docs, wiki  # noqa: E402,F401

__all__ = ["KINDS", "SOURCES", "Source", "get_source", "list_sources", "register_source"]
