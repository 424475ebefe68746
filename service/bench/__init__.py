"""Benchmarks of the service (load on loopback)."""
