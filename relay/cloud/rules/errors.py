"""The one error type of the control plane's rules.

Every rule that refuses user input raises RuleError with a stable machine
code, a message that says what is wrong and how to fix it, and the field
(or CSV column) at fault. The API maps it to `{"error": {...}}`.
"""

from __future__ import annotations


class RuleError(ValueError):
    """User input broke a rule of cloud.md; nothing was changed."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 422):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status

    def as_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out
