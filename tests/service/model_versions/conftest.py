"""The shared tiny checkpoints for the models endpoint tests, and a Redis key prefix."""

from __future__ import annotations

from tests.service.hotswap.conftest import prefix
from tests.service.recommendations.kit import checkpoints, restore_torch_threads

__all__ = ["checkpoints", "prefix", "restore_torch_threads"]
