"""Fixes to Rasa 3.6.21 behaviour, applied by the launcher before Rasa starts.

Each patch is small, named for what it fixes, and covered by a test.
"""

from __future__ import annotations

_applied = False


def apply() -> None:
    """Apply every patch once (idempotent)."""
    global _applied
    if _applied:
        return
    _applied = True
