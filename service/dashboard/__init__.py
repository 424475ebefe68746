"""dashboard domain: a server-rendered ops page at ``/dashboard`` (HTTP Basic, admin key)."""
