"""deletions domain."""
