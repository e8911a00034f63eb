"""Everything in Revierlotse that knows Rasa 3.6.21's internals, and nothing else.

Rasa's extension points (components, channels, stores, actions) are used elsewhere;
what needs more than those lives here:

- `behaviour`: patches that change what Rasa does (turn guard, apology when an action
  fails, log level after model load, no version on `GET /`, the apology instead of the
  tracker store's silent in-memory fallback). Always applied.
- `speedups`: patches that only make Rasa faster (response validation, event type
  lookup, graph runner, dialogue states, endpoint sessions, debug-log copies,
  `Domain.is_empty`), plus `startup` (import order). Off with RASA_SPEEDUPS=false.
- `graph_runner`, `dialogue_states`: the re-implementations two speed-ups serve.
- `tracker_store`: the SQL tracker store, built on `SQLTrackerStore`'s private parts.

`apply()` is called by the launcher before Rasa starts. It refuses any Rasa version but
3.6.21, checks every attribute it replaces or relies on against the fingerprint written
down for 3.6.21 before it changes anything, and applies all patches or none. What each
patch relies on is explained in docs/rasa-3.6-notes.md.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

from revierlotse.rasa36.core import (
    RASA_VERSION,
    Applied,
    Patch,
    PatchTargetError,
    RasaVersionError,
    Target,
    apply_patches,
    check_rasa_version,
    check_targets,
    installed_rasa_version,
)

__all__ = [
    "RASA_VERSION", "Patch", "PatchTargetError", "RasaVersionError", "Target", "apply", "applied",
    "check_rasa_version", "check_targets", "installed_rasa_version", "original", "selected_patches",
]

logger = logging.getLogger(__name__)

_state: Dict[str, Any] = {}  # "speedups": bool, "applied": Applied, after a successful apply()


def selected_patches(speedups: bool) -> Tuple[Patch, ...]:
    """The patches `apply(speedups)` applies, behaviour patches first."""
    from revierlotse.rasa36 import behaviour, speedups as speed, tracker_store

    chosen = (*behaviour.PATCHES, tracker_store.CHECK)
    return (*chosen, *speed.PATCHES) if speedups else chosen


def apply(speedups: Optional[bool] = None) -> None:
    """Patch Rasa once per process (all or nothing); `speedups` defaults to RASA_SPEEDUPS.

    Raises `RasaVersionError` on another Rasa version and `PatchTargetError` when a
    target is missing or not the expected one; in both cases nothing is changed.
    """
    if speedups is None:
        from revierlotse.settings import get_settings

        speedups = get_settings().rasa_speedups
    if _state:
        if _state["speedups"] != speedups:
            raise RuntimeError(f"Rasa is already patched with RASA_SPEEDUPS={_state['speedups']}; "
                               f"cannot switch to {speedups} in the same process")
        return
    check_rasa_version()  # before anything imports Rasa
    from revierlotse.rasa36 import startup

    hooks = startup.prepare() if speedups else []  # before Rasa imports TensorFlow
    try:
        import rasa.version

        check_rasa_version(rasa.version.__version__)  # the imported Rasa, not only its metadata
        applied_now = apply_patches(selected_patches(speedups))
    except BaseException:
        startup.undo(hooks)
        raise
    _state.update(speedups=speedups, applied=applied_now)
    logger.debug("Rasa %s patched: %d attributes, speed-ups %s", RASA_VERSION, len(applied_now.replacements),
                 "on" if speedups else "off")


def applied() -> Optional[Applied]:
    """What `apply()` changed in this process (None before it ran)."""
    return _state.get("applied")


def original(module: str, path: str) -> Any:
    """Rasa's own value of a patched attribute (e.g. for comparing with the replacement)."""
    done = applied()
    if done is None:
        raise RuntimeError("Rasa is not patched in this process")
    return done.originals[f"{module}:{path}"]
