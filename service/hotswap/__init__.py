"""Publishing model versions to every API replica (Redis) or to this process (embedded)."""
