"""Structured JSON logs with request ids.

- ``request_id_var``: the id of the HTTP request being handled (set by the observability
  middleware, see ``service.observability``); ``None`` outside a request.
- ``RequestIdFilter``: puts ``request_id`` on every record passing a handler.
- ``JsonFormatter``: one JSON object per line: ``ts``, ``level``, ``logger``, ``message``,
  ``request_id`` and any ``extra=`` fields (e.g. the access line's ``method``, ``route``,
  ``status``, ``duration_ms``).
- ``configure_logging``: installs one such handler on the root logger (idempotent).

Nothing here logs headers or bodies: callers must not pass API keys, Authorization headers
or deleted item ids as messages or extras (the access line carries the route template only).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("rtbf_request_id", default=None)

# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
_MARK = "_rtbf_json_handler"


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or None); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> logging.Handler:
    """Log to stderr from the root logger, as JSON lines (or plain text), with request ids.
    Replaces a handler an earlier call installed; leaves other handlers alone."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, False):
            root.removeHandler(h)
    handler = _StderrHandler()
    setattr(handler, _MARK, True)
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    # client libraries log full URLs (callback URLs may carry tokens) at INFO
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
