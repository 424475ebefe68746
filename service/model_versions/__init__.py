"""model versions domain."""
