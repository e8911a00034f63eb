"""Erasure on request (DSGVO Art. 17): "Lösch meine Daten" deletes every stored event of
the conversation at once, the erasure turn included, and nothing of it stays in memory.

The tracker store is tested on its own against real SQLite and PostgreSQL databases
(two store objects on one database stand for two replicas); the bot end to end over
REST, and two real replicas sharing PostgreSQL and Redis. Every test reads the rows of
the `events` table itself.
"""

from __future__ import annotations

import asyncio
from typing import List

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from revierlotse import erasure
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stores.tracker_store import DatabaseTrackerStore
from tests.conftest import new_sender
from tests.stored_events import stored_events, user_texts

ERASED = "Ich habe unser Gespräch gelöscht"


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT_ROOT / "domain.yml"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conversations.db'}"
    return request.getfixturevalue("postgres_url")


def store_on(url: str, domain: Domain) -> DatabaseTrackerStore:
    return DatabaseTrackerStore(domain=domain, url=url)


def started(sender: str, at: float) -> List:
    return [ActionExecuted("action_session_start", timestamp=at), SessionStarted(timestamp=at),
            ActionExecuted("action_listen", timestamp=at)]


def turn(text: str, reply: str, at: float, *extra) -> List:
    return [UserUttered(text, intent={"name": "inform", "confidence": 1.0}, timestamp=at),
            ActionExecuted("action_inform", timestamp=at + 0.1), *extra,
            BotUttered(reply, timestamp=at + 0.2), ActionExecuted("action_listen", timestamp=at + 0.3)]


def erasure_turn(at: float) -> List:
    return turn("Lösch meine Daten", f"{ERASED} ...", at, SlotSet(erasure.ERASE_SLOT, True, timestamp=at + 0.1))


def save(store: DatabaseTrackerStore, tracker: DialogueStateTracker) -> None:
    asyncio.run(store.save(tracker))


def retrieve(store: DatabaseTrackerStore, sender: str):
    return asyncio.run(store.retrieve(sender))


def continued(store: DatabaseTrackerStore, sender: str, events: List) -> DialogueStateTracker:
    """The conversation as the store hands it out, with `events` added (one more turn)."""
    tracker = retrieve(store, sender)
    for event in events:
        tracker.update(event)
    return tracker


# --- the tracker store on SQLite and PostgreSQL ----------------------------------------

def test_erasure_deletes_every_session_of_the_conversation_and_nothing_else(database_url, domain):
    store = store_on(database_url, domain)
    anna, other = new_sender(), new_sender()
    save(store, DialogueStateTracker.from_events(anna, started(anna, 1000) + turn("Ich bin Einsteiger.", "Notiert", 1001)))
    save(store, continued(store, anna, started(anna, 9000) + turn("Was verdient man?", "Antwort", 9001)))  # 2nd session
    save(store, DialogueStateTracker.from_events(other, started(other, 1000) + turn("Hallo", "Glück auf!", 1001)))
    assert user_texts(database_url, anna) == ["Ich bin Einsteiger.", "Was verdient man?"]
    before_other = stored_events(database_url, other)

    save(store, continued(store, anna, erasure_turn(9100)))

    assert stored_events(database_url, anna) == []  # both sessions, and the erasure turn itself
    assert stored_events(database_url, other) == before_other
    assert retrieve(store, anna) is None  # the kept tracker went with the rows
    store.engine.dispose()


def test_the_marker_never_reaches_the_database_even_on_a_tracker_the_store_did_not_load(database_url, domain):
    store = store_on(database_url, domain)
    sender = new_sender()
    save(store, DialogueStateTracker.from_events(sender, started(sender, 1000) + turn("Hallo", "Glück auf!", 1001)))
    rebuilt = DialogueStateTracker.from_events(sender, started(sender, 1000) + turn("Hallo", "Glück auf!", 1001)
                                               + erasure_turn(1100))  # e.g. from the HTTP API
    save(store_on(database_url, domain), rebuilt)
    assert stored_events(database_url, sender) == []
    store.engine.dispose()


def test_caches_registered_for_erasure_are_told_which_conversation_went(database_url, domain):
    told: List[str] = []

    class Cache:
        def forget(self, sender_id: str) -> None:
            told.append(sender_id)

    cache = Cache()
    erasure.on_erasure(cache.forget)
    store = store_on(database_url, domain)
    sender = new_sender()
    save(store, DialogueStateTracker.from_events(sender, started(sender, 1000) + turn("Hallo", "Glück auf!", 1001)))
    save(store, continued(store, sender, turn("Was verdient man?", "Antwort", 1010)))
    assert told == []
    save(store, continued(store, sender, erasure_turn(1020)))
    assert told == [sender]
    del cache  # held weakly: a cache that is gone is not called again
    save(store, DialogueStateTracker.from_events(sender, started(sender, 2000) + erasure_turn(2001)))
    assert told == [sender]
    store.engine.dispose()


def test_another_replica_does_not_bring_the_erased_conversation_back(database_url, domain):
    replica_a, replica_b = store_on(database_url, domain), store_on(database_url, domain)
    sender = new_sender()
    save(replica_a, DialogueStateTracker.from_events(sender, started(sender, 1000)
                                                     + turn("Ich bin Einsteiger.", "Notiert", 1001)))
    save(replica_b, continued(replica_b, sender, turn("Was verdient man?", "Antwort", 1010)))  # B keeps it now
    save(replica_a, continued(replica_a, sender, erasure_turn(1020)))
    assert stored_events(database_url, sender) == []

    assert retrieve(replica_b, sender) is None  # B's kept tracker is not handed out
    save(replica_b, DialogueStateTracker.from_events(sender, started(sender, 1030) + turn("Hallo", "Glück auf!", 1031)))
    assert user_texts(database_url, sender) == ["Hallo"]  # a new conversation, nothing old in it
    replica_a.engine.dispose()
    replica_b.engine.dispose()


def test_the_served_dialogue_state_replays_drop_an_erased_conversation(domain):
    from revierlotse.rasa36.speedups import INCREMENTAL_STATES, _build_dialogue_states_incrementally

    _build_dialogue_states_incrementally({})  # what the speed-up does when Rasa starts
    incremental = INCREMENTAL_STATES["served"]
    erased, kept = new_sender(), new_sender()
    for sender in (erased, kept):
        tracker = DialogueStateTracker.from_events(sender, started(sender, 1000) + turn("Hallo", "Glück auf!", 1001),
                                                   domain.slots)
        incremental.states(domain, tracker)
    assert {key[0] for key in incremental._walks} >= {erased, kept}

    erasure.forget_in_memory(erased)

    senders = {key[0] for key in incremental._walks}
    assert erased not in senders and kept in senders
