"""API keys: creation, hashing, lookup, scopes."""
