"""Revierlotse's fixes to Rasa keep Rasa's behaviour (here: event type lookup)."""

from __future__ import annotations

import pytest
from rasa.shared.core import events
from rasa.shared.utils.common import all_subclasses

from revierlotse import rasa_patches


def rasa_lookup(type_name):
    """Rasa's own rule: the first subclass in all_subclasses order with that name."""
    return next((c for c in all_subclasses(events.Event) if c.type_name == type_name), None)


@pytest.fixture(scope="module", autouse=True)
def patched():
    rasa_patches.apply()


def test_every_event_type_resolves_to_the_class_rasa_would_pick():
    names = {c.type_name for c in all_subclasses(events.Event)}
    assert {"user", "bot", "action", "slot", "session_started"} <= names
    for name in names:
        assert events.Event.resolve_by_type(name) is rasa_lookup(name)


def test_unknown_names_keep_rasas_behaviour():
    assert events.Event.resolve_by_type("topic") is None
    assert events.Event.resolve_by_type("no_such_event", default=events.UserUttered) is events.UserUttered
    with pytest.raises(ValueError, match="Unknown event name"):
        events.Event.resolve_by_type("no_such_event")


def test_events_still_round_trip_through_dicts():
    original = [events.UserUttered("Gehalt?", {"name": "ask_salary", "confidence": 0.9}),
                events.SlotSet("level", "entry"), events.ActionExecuted("action_answer_topic")]
    assert [events.Event.from_parameters(e.as_dict()) for e in original] == original


@pytest.mark.e2e
def test_root_route_does_not_disclose_the_rasa_version(bot):
    import urllib.request

    with urllib.request.urlopen(f"{bot.url}/", timeout=10) as resp:
        body = resp.read().decode()
    assert resp.status == 200 and body == "Revierlotse is running."
    assert "3.6" not in body and "Rasa" not in body
