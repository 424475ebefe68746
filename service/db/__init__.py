"""Data repository: ORM models, engine and sessions."""
