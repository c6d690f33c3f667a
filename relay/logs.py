"""Structured logging: one line per event, human-readable by default or JSON.

Services call `event(logger, "name", key=value, ...)`. Secrets are never
passed as fields; the formatter additionally masks any field whose name says
it holds one, as a second line of defence.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_SECRET_WORDS = ("password", "token", "secret", "pin", "authorization")


def _is_secret(key: str) -> bool:
    """Field names that say they hold a secret; `*_file` fields name where one is kept."""
    lowered = key.lower()
    return not lowered.endswith("_file") and any(w in lowered for w in _SECRET_WORDS)


def _masked(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if _is_secret(k) else v) for k, v in fields.items()}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return _masked(fields) if isinstance(fields, dict) else {}


class HumanFormatter(logging.Formatter):
    """`2026-11-22T03:00:00Z INFO cloud.api request method=GET status=200`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        parts = [stamp, record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={v}" for k, v in _fields(record).items()]
        line = " ".join(str(p) for p in parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(log_format: str, level: str = "INFO") -> None:
    """Send every service's log lines to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event."""
    logger.log(level, name, extra={"fields": fields})
