"""The layer engine: ingest, validation, versioned storage, feature queries.

Every function takes a SQLAlchemy ``Connection``; callers own the transaction. Nothing here
imports the HTTP layer.
"""
