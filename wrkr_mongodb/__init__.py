"""wrkr's MongoDB backend: ``Wrkr.from_url("mongodb://host:27017/wrkr")``.

Needs PyMongo (its own async API; Motor is past its end of life and not used):
``pip install "wrkr[mongodb]"``.
"""

from __future__ import annotations

try:
    import pymongo  # noqa: F401  - checked here so the hint comes before any other error
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'wrkr_mongodb needs PyMongo: pip install "wrkr[mongodb]"'
    ) from exc

from wrkr_mongodb._backend import MongoDBBackend
from wrkr_mongodb._claims import MongoDBReceipt
from wrkr_mongodb._store import MongoDBStore

__all__ = ["MongoDBBackend", "MongoDBReceipt", "MongoDBStore"]
