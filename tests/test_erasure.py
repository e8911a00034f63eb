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
from revierlotse.db import make_engine
from revierlotse.kb.loader import load_knowledge
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack
from revierlotse.stores.tracker_store import DatabaseTrackerStore
from tests.conftest import ARTIFACTS, free_port, new_sender, post_json, stack_overrides
from tests.stored_events import stored_events, user_texts

ERASED = "Ich habe unser Gespräch gelöscht"
ENTRY, SENIOR = "4.200 bis 5.200 €", "5.800 bis 7.200 €"


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


# --- the bot, end to end over REST --------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("request_text", [
    "Lösch meine Daten",
    "Bitte lösch alle meine Daten!",
    "kannst du meine daten löschen?",
    "Ich möchte, dass meine Daten gelöscht werden.",
    "/delete_data",  # the widget's control
])
def test_a_deletion_request_erases_the_conversation_at_once(bot, kb_url, request_text):
    sender = new_sender()
    bot.ask("Ich bin Berufseinsteiger.", sender)
    assert ENTRY in bot.ask_text("Was verdient man als IT Manager?", sender)
    assert len(user_texts(kb_url, sender)) == 2

    reply = bot.ask_text(request_text, sender)

    assert reply.startswith(ERASED) and "diese Bitte eingeschlossen" in reply
    assert stored_events(kb_url, sender) == []


@pytest.mark.e2e
def test_after_erasure_the_same_sender_starts_a_conversation_that_knows_nothing(bot, kb_url):
    sender = new_sender()
    bot.ask("Ich bin Berufseinsteiger.", sender)
    bot.ask("Lösch meine Daten", sender)
    reply = bot.ask_text("Was verdient man als IT Manager?", sender)
    assert ENTRY in reply and SENIOR in reply, "without the level both bands are given"
    assert user_texts(kb_url, sender) == ["Was verdient man als IT Manager?"]


@pytest.mark.e2e
def test_vergiss_das_resets_the_context_says_only_that_and_deletes_nothing(bot, kb_url):
    sender = new_sender()
    bot.ask("Ich bin Berufseinsteiger.", sender)
    reply = bot.ask_text("Vergiss das", sender)
    assert "vergessen" in reply
    assert not any(word in reply.lower() for word in ("lösch", "gelöscht", "erledigt", "datenbank"))
    assert user_texts(kb_url, sender) == ["Ich bin Berufseinsteiger.", "Vergiss das"]


# --- two replicas on one PostgreSQL and one Redis ------------------------------------------

@pytest.fixture
def replicas(model, postgres_url, redis_url):
    engine = make_engine(postgres_url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    overrides = stack_overrides(postgres_url, REDIS_URL=redis_url)
    with Stack.default(model, overrides, log_dir=ARTIFACTS / "logs" / "erasure-replicas",
                       replica_ports=[free_port()]) as stack:
        yield stack.rasa_urls


def say(url: str, sender: str, text: str) -> str:
    replies = post_json(f"{url}/webhooks/rest/webhook", {"sender": sender, "message": text}, timeout=120)
    return "\n".join(m.get("text", "") for m in replies)


@pytest.mark.e2e
def test_erasure_on_one_replica_removes_what_both_replicas_wrote(replicas, postgres_url):
    first, second = replicas
    sender = new_sender()
    say(first, sender, "Ich bin Berufseinsteiger.")
    assert ENTRY in say(second, sender, "Was verdient man als IT Manager?")
    say(first, sender, "Welche Fähigkeiten brauche ich?")  # the first replica keeps the tracker now
    assert say(second, sender, "Lösch meine Daten").startswith(ERASED)
    assert stored_events(postgres_url, sender) == []

    reply = say(first, sender, "Was verdient man als IT Manager?")  # where the old tracker was kept
    assert ENTRY in reply and SENIOR in reply, "the level must be gone on the other replica too"
    assert user_texts(postgres_url, sender) == ["Was verdient man als IT Manager?"]
