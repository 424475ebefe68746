"""Fixtures for the jobs endpoint tests."""

from __future__ import annotations

from tests.service.recommendations.kit import restore_torch_threads

__all__ = ["restore_torch_threads"]
