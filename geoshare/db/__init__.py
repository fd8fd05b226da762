"""Database engine and schema migrations."""

from geoshare.db.engine import get_engine, make_engine

__all__ = ["get_engine", "make_engine"]
