"""Helpers of the bad-input corpus (a module with a unique name, importable from tests)."""

from __future__ import annotations

from pathlib import Path


def assert_clean_error(exc: BaseException, *needles: str) -> str:
    """``exc`` reads as the README promises: one line, naming what was wrong and what is
    accepted (each of ``needles`` appears in it). Returns the message."""
    msg = str(exc)
    assert "\n" not in msg, f"not one line: {msg!r}"
    assert "Traceback" not in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def write(path: Path, text: str | bytes) -> Path:
    """Write ``text`` (bytes as they are, str as UTF-8) and return the path."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
