"""The marker a forgotten subject's personal data reads back as (shared by both faces)."""

from __future__ import annotations

from typing import Any


class _Redacted:
    """The value of a personal field whose subject was forgotten (one instance)."""

    _instance: _Redacted | None = None

    def __new__(cls) -> _Redacted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REDACTED"

    def __bool__(self) -> bool:
        return False


REDACTED: Any = _Redacted()
"""What a forgotten subject's personal field reads back as (falsy, ``repr`` ``REDACTED``)."""
