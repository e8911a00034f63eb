"""Erasure on request (DSGVO Art. 17): one conversation removed from storage and memory.

How a request travels:

1. The user asks ("Lösch meine Daten", `/loeschen` on Telegram, the widget's control
   sends `/delete_data`); the action `action_delete_data` (actions/privacy.py) says
   what is about to happen and returns the marker event `SlotSet(ERASE_SLOT, True)`.
2. Rasa saves the tracker after the turn. The tracker store
   (revierlotse.stores.tracker_store) sees the marker among the events it was asked to
   save and, instead of saving, deletes every row of that sender: all sessions, and the
   erasure turn itself. The marker is never written.
3. The store drops its own kept tracker and calls `forget_in_memory(sender_id)`, which
   tells every in-process cache that registered with `on_erasure` to drop what it holds
   for that conversation.

Deleting from the action server instead would not work: Rasa writes the tracker after
the action, and that save would put the events back. Doing it in the save runs under the
conversation's lock, so no other replica can work on the conversation meanwhile; other
replicas notice the missing rows the next time they load it.

Plain Python, no Rasa imports: the store, the actions and the caches all use it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable, Iterable, List

logger = logging.getLogger(__name__)

# The slot whose `SlotSet(ERASE_SLOT, True)` asks the tracker store to erase the
# conversation instead of saving it (domain.yml declares it; it never reaches the database).
ERASE_SLOT = "erase_conversation"

_forgetters: List[Callable[[], Callable[[str], Any] | None]] = []


def is_erasure_marker(event: Any) -> bool:
    """Whether `event` (a Rasa event object or its dict) is the erasure marker."""
    if isinstance(event, dict):
        return event.get("event") == "slot" and event.get("name") == ERASE_SLOT and bool(event.get("value"))
    return getattr(event, "type_name", None) == "slot" and getattr(event, "key", None) == ERASE_SLOT \
        and bool(getattr(event, "value", None))


def requests_erasure(events: Iterable[Any]) -> bool:
    """Whether any of `events` is the erasure marker."""
    return any(is_erasure_marker(event) for event in events)


def on_erasure(forget: Callable[[str], Any]) -> None:
    """Register `forget(sender_id)`, called when that conversation is erased.

    Bound methods are held weakly: a cache that goes away unregisters itself.
    """
    if any(reference() == forget for reference in _forgetters):
        return  # registered already
    if hasattr(forget, "__self__"):
        reference: Callable[[], Callable[[str], Any] | None] = weakref.WeakMethod(forget)  # type: ignore[arg-type]
    else:
        reference = lambda: forget  # noqa: E731 - a plain function lives as long as its module
    _forgetters.append(reference)


def forget_in_memory(sender_id: str) -> None:
    """Tell every registered cache to drop what it holds for `sender_id`."""
    for reference in list(_forgetters):
        forget = reference()
        if forget is None:
            _forgetters.remove(reference)
            continue
        try:
            forget(sender_id)
        except Exception:  # noqa: BLE001 - one failing cache must not keep the others
            logger.exception("Erasure: a cache could not drop a conversation")
