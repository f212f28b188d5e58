"""Serving: the HTTP app, its request/response schemas and the service's assembly.

FastAPI is needed by this package only; nothing outside ``vidrec.serving`` imports it.
"""

from vidrec.serving.app import create_app
from vidrec.serving.deps import RecommenderLike

__all__ = ["RecommenderLike", "create_app"]
