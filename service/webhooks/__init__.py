"""Signed status webhooks: an outbox written with each status change, delivered later."""
