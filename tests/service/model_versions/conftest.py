"""The shared tiny checkpoints for the models endpoint tests."""

from __future__ import annotations

from tests.service.recommendations.kit import checkpoints, restore_torch_threads

__all__ = ["checkpoints", "restore_torch_threads"]
