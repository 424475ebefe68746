"""recommendations domain."""
