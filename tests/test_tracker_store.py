"""Conversations in SQL (SQLite and PostgreSQL): Rasa's rows and rules, kept trackers, restarts.

PostgreSQL tests get a fresh schema (`postgres_url`) and drop it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from revierlotse.db import make_engine
from revierlotse.kb.loader import load_knowledge
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack
from revierlotse.stores.tracker_store import DatabaseTrackerStore
from tests.conftest import ARTIFACTS, Bot, new_sender, stack_overrides

DAY = 86400.0


def test_tracker_store_keeps_conversation_and_slots_across_instances(database_url):
    sender = new_sender()
    first = DatabaseTrackerStore(domain=Domain.empty(), host=database_url)
    tracker = DialogueStateTracker.from_events(sender, [
        ActionExecuted("action_listen"), UserUttered("ich bin Einsteiger"), SlotSet("level", "entry"),
        BotUttered("Alles klar."), ActionExecuted("action_listen"),
    ])
    asyncio.run(first.save(tracker))
    first.engine.dispose()

    second = DatabaseTrackerStore(domain=Domain.empty(), host=database_url)  # as after a restart
    restored = asyncio.run(second.retrieve(sender))
    second.engine.dispose()
    assert [e.text for e in restored.events if isinstance(e, UserUttered)] == ["ich bin Einsteiger"]
    assert any(isinstance(e, SlotSet) and e.key == "level" and e.value == "entry" for e in restored.events)


class RasasOwnQueries(DatabaseTrackerStore):
    """Our engine, but Rasa's SQLTrackerStore queries and save (the reference)."""

    _retrieve = SQLTrackerStore._retrieve
    save = SQLTrackerStore.save


def test_tracker_store_reads_and_writes_exactly_what_rasas_sql_store_does(database_url):
    """Session boundaries, slots, saves of loaded and of new trackers: same rows, same trackers."""
    sender = new_sender()
    ours = DatabaseTrackerStore(domain=Domain.empty(), host=database_url)
    rasa = RasasOwnQueries(domain=Domain.empty(), host=database_url)
    t0 = time.time() - 1000
    first_session = [ActionExecuted("action_session_start", timestamp=t0), SessionStarted(timestamp=t0),
                     ActionExecuted("action_listen", timestamp=t0), UserUttered("hallo", timestamp=t0 + 1),
                     SlotSet("level", "entry", timestamp=t0 + 1), ActionExecuted("action_listen", timestamp=t0 + 2)]
    asyncio.run(ours.save(DialogueStateTracker.from_events(sender, first_session)))  # new tracker: counted

    loaded = asyncio.run(ours.retrieve(sender))
    reference = asyncio.run(rasa.retrieve(sender))
    assert [e.as_dict() for e in loaded.events] == [e.as_dict() for e in reference.events]
    for event in [ActionExecuted("action_session_start", timestamp=t0 + 500), SessionStarted(timestamp=t0 + 500),
                  ActionExecuted("action_listen", timestamp=t0 + 500), UserUttered("neu", timestamp=t0 + 501)]:
        loaded.update(event)
    asyncio.run(ours.save(loaded))  # loaded tracker: appends only what is new
    asyncio.run(ours.save(loaded))  # saving again adds nothing

    for store in (ours, rasa):  # the latest session only, as Rasa defines it
        current = asyncio.run(store.retrieve(sender))
        assert [e.text for e in current.events if isinstance(e, UserUttered)] == ["neu"]
        full = asyncio.run(store.retrieve_full_tracker(sender))
        assert [e.text for e in full.events if isinstance(e, UserUttered)] == ["hallo", "neu"]
    with ours.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT type_name, intent_name, action_name FROM events "
                                          "WHERE sender_id = :s ORDER BY id"), {"s": sender}).all()
    assert len(rows) == len(first_session) + 4
    assert rows[2] == ("action", None, "action_listen") and rows[-1][0] == "user"

    current = asyncio.run(ours.retrieve(sender))
    current.update(BotUttered("Antwort", timestamp=t0 + 502))
    asyncio.run(rasa.save(current))  # Rasa's own save agrees on what is missing
    assert len(asyncio.run(ours.retrieve_full_tracker(sender)).events) == len(rows) + 1
    assert asyncio.run(ours.retrieve("nobody-" + sender)) is None
    ours.engine.dispose()
    rasa.engine.dispose()




# --- kept trackers ----------------------------------------------------------------

def full_state(tracker: DialogueStateTracker, domain: Domain):
    """Everything a turn reads from a tracker: events, slots, derived state, policy states.

    As JSON data: a message parsed in this process holds its token spans as tuples, one
    read back from the database as lists (the JSON sent to the action server is the same).
    """
    from rasa.shared.core.trackers import EventVerbosity

    return json.loads(json.dumps({
        "state": tracker.current_state(EventVerbosity.ALL),
        "slots": {name: slot.value for name, slot in tracker.slots.items()},
        "latest_message": tracker.latest_message.as_dict() if tracker.latest_message else None,
        "latest_bot_utterance": tracker.latest_bot_utterance.as_dict() if tracker.latest_bot_utterance else None,
        "followup_action": tracker.followup_action,
        "latest_action": tracker.latest_action,
        "active_loop": tracker.active_loop,
        "paused": tracker.is_paused(),
        "past_states": tracker.past_states(domain),
    }))


def turn(tracker: DialogueStateTracker, text: str, when: float) -> None:
    tracker.update(UserUttered(text, {"name": "ask_salary", "confidence": 0.9}, timestamp=when))
    tracker.update(SlotSet("level", "senior", timestamp=when))
    tracker.update(ActionExecuted("action_answer_topic", timestamp=when))
    tracker.update(BotUttered(f"Antwort auf {text}", timestamp=when))
    tracker.update(ActionExecuted("action_listen", timestamp=when))


@pytest.fixture
def project_domain():
    return Domain.load(PROJECT_ROOT / "domain.yml")


def started_conversation(store: DatabaseTrackerStore, sender: str, when: float) -> DialogueStateTracker:
    """A conversation as Rasa starts one, saved, then loaded back by `store`."""
    events = [ActionExecuted("action_session_start", timestamp=when), SessionStarted(timestamp=when + 0.5),
              ActionExecuted("action_listen", timestamp=when + 0.5)]
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events, store.domain.slots)))
    return asyncio.run(store.retrieve(sender))


def test_a_saved_tracker_is_handed_out_again_only_while_its_rows_are_unchanged(database_url, project_domain):
    sender, when = new_sender(), time.time()
    store = DatabaseTrackerStore(domain=project_domain, host=database_url)
    other_replica = DatabaseTrackerStore(domain=project_domain, host=database_url)
    tracker = started_conversation(store, sender, when)
    turn(tracker, "Was verdient man?", when + 1)
    asyncio.run(store.save(tracker))
    kept = asyncio.run(store.retrieve(sender))
    assert kept is tracker  # no rows changed: the saved tracker, not a rebuild
    fresh = asyncio.run(other_replica.retrieve(sender))
    assert fresh is not kept and full_state(kept, project_domain) == full_state(fresh, project_domain)
    assert asyncio.run(store.retrieve(sender)) is not kept  # handed out once: the next caller loads

    # another replica answers the next message: this store sees its events
    turn(tracker, "und als Einsteiger?", when + 2)
    asyncio.run(store.save(tracker))
    theirs = asyncio.run(other_replica.retrieve(sender))
    turn(theirs, "Welche Zertifikate?", when + 3)
    asyncio.run(other_replica.save(theirs))
    mine = asyncio.run(store.retrieve(sender))
    assert mine is not tracker and len(mine.events) == len(theirs.events)
    assert full_state(mine, project_domain) == full_state(theirs, project_domain)


def test_trackers_a_fresh_load_would_differ_from_are_not_kept(database_url, project_domain):
    sender, when = new_sender(), time.time()
    store = DatabaseTrackerStore(domain=project_domain, host=database_url)
    # a conversation's first save: it includes the event before `session_started`,
    # which a load leaves out
    first = DialogueStateTracker.from_events(sender, [
        ActionExecuted("action_session_start", timestamp=when), SessionStarted(timestamp=when + 0.5),
        ActionExecuted("action_listen", timestamp=when + 0.5)], project_domain.slots)
    asyncio.run(store.save(first))
    loaded = asyncio.run(store.retrieve(sender))
    assert loaded is not first and len(loaded.events) == 2

    # a new session starting in a turn: the next load starts at it
    turn(loaded, "Was verdient man?", when + 1)
    loaded.update(ActionExecuted("action_session_start", timestamp=when + 2))
    loaded.update(SessionStarted(timestamp=when + 3))
    loaded.update(ActionExecuted("action_listen", timestamp=when + 3))
    asyncio.run(store.save(loaded))
    again = asyncio.run(store.retrieve(sender))
    assert again is not loaded and [e.type_name for e in again.events] == ["session_started", "action"]

    # a tracker built elsewhere (the HTTP API) and a tracker changed after its save
    built = DialogueStateTracker.from_events(sender, list(again.events), project_domain.slots)
    turn(built, "gebaut", when + 4)
    asyncio.run(store.save(built))
    assert asyncio.run(store.retrieve(sender)) is not built
    changed = asyncio.run(store.retrieve(sender))
    asyncio.run(store.save(changed))
    turn(changed, "nicht gespeichert", when + 5)
    assert asyncio.run(store.retrieve(sender)) is not changed


def test_purge_new_model_and_the_bound_all_end_a_kept_tracker(database_url, project_domain, monkeypatch):
    from revierlotse.purge import purge_conversations
    from revierlotse.rasa36 import tracker_store

    sender, when = new_sender(), time.time() - 40 * DAY
    store = DatabaseTrackerStore(domain=project_domain, host=database_url)
    tracker = started_conversation(store, sender, when)
    turn(tracker, "alt", when + 1)
    asyncio.run(store.save(tracker))
    assert purge_conversations(make_engine(database_url), retention_days=30) >= 1
    assert asyncio.run(store.retrieve(sender)) is None  # purged: gone, not served from memory

    # purged, then started anew on another replica up to the same number of events
    asyncio.run(store.save(tracker))  # kept again (its rows are gone: a load finds none)
    other_replica = DatabaseTrackerStore(domain=project_domain, host=database_url)
    now = time.time()
    anew = started_conversation(other_replica, sender, now)
    turn(anew, "neu", now + 1)
    asyncio.run(other_replica.save(anew))
    assert len(anew.events) == len(tracker.events)
    handed = asyncio.run(store.retrieve(sender))
    assert handed is not tracker and [e.as_dict() for e in handed.events] == [e.as_dict() for e in anew.events]
    asyncio.run(store.save(handed))
    assert purge_conversations(make_engine(database_url), retention_days=-1) >= 1

    tracker = started_conversation(store, sender, time.time())
    asyncio.run(store.save(tracker))
    store.domain = Domain.load(PROJECT_ROOT / "domain.yml")  # a new model's domain
    reloaded = asyncio.run(store.retrieve(sender))
    assert reloaded is not tracker and reloaded.slots["level"] is not tracker.slots["level"]

    monkeypatch.setattr(tracker_store, "KEPT_TRACKERS", 3)
    senders = [new_sender() for _ in range(5)]
    for other in senders:
        asyncio.run(store.save(started_conversation(store, other, time.time())))
    assert list(store._kept) == senders[-3:]
    # the events bound: each of these trackers has 2 events
    monkeypatch.setattr(tracker_store, "KEPT_EVENTS", 5)
    newest = new_sender()
    asyncio.run(store.save(started_conversation(store, newest, time.time())))
    assert list(store._kept) == [senders[-1], newest] and store._kept_events == 4
    asyncio.run(store.retrieve(newest))  # handed out: no longer counted
    assert store._kept_events == 2


@pytest.mark.e2e
def test_kept_trackers_equal_fresh_loads_through_real_turns(model, bot, tmp_path, monkeypatch):
    """Real turns (trained model, the running action server): after every message the
    tracker the store would hand out for the next one is the tracker a fresh load gives."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.utils.endpoints import EndpointConfig

    from revierlotse import rasa36
    from tests.conftest import heldout_questions

    rasa36.apply()
    url = f"sqlite:///{tmp_path / 'conversations.db'}"
    store = DatabaseTrackerStore(host=url)
    agent = Agent.load(str(model), tracker_store=store,
                       action_endpoint=EndpointConfig(bot.stack.settings.action_endpoint_url))
    domain = agent.domain
    texts = heldout_questions()[::23] + ["ich bin Einsteiger", "/restart", "Was verdient man in Essen?", "hallo"]
    loads = []
    from_dict = DialogueStateTracker.from_dict
    monkeypatch.setattr(DialogueStateTracker, "from_dict",
                        classmethod(lambda cls, *a, **k: loads.append(1) or from_dict(*a, **k)))
    turns: list = []

    async def talk():
        for sender_no in range(3):
            sender = new_sender()
            for text in texts[sender_no::2]:
                out = CollectingOutputChannel()
                await agent.handle_message(UserMessage(text, out, sender))
                assert out.messages or text == "/restart"
                # what the store would hand out for the next message (then kept again)
                entry = store._kept.get(sender)
                with store.engine.connect() as connection:
                    handed = store._kept_tracker(connection, sender)
                if entry is not None:
                    store._keep(entry[0])  # as it was: the agent's next retrieve checks it
                fresh = await DatabaseTrackerStore(domain=domain, host=url).retrieve(sender)
                if handed is not None:
                    assert full_state(handed, domain) == full_state(fresh, domain)
                turns.append(handed is not None)

    asyncio.run(talk())
    assert sum(turns) >= len(turns) - 6  # kept after all but a conversation's first turns
    assert len(loads) - len(turns) <= 6  # ... and the agent then did not rebuild them


@pytest.mark.e2e
def test_conversation_survives_a_restart_of_the_rasa_server(model, postgres_url):
    engine = make_engine(postgres_url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    sender = new_sender()
    with Stack.default(model, stack_overrides(postgres_url), log_dir=ARTIFACTS / "logs" / "restart") as stack:
        bot = Bot(stack)
        assert bot.ask("ich bin Einsteiger", sender), "no reply before the restart"

        rasa = stack.service("rasa server")
        rasa.stop()
        rasa.start()
        rasa.wait_ready(stack.ready_timeout)

        reply = bot.ask_text("was kann ich verdienen?", sender)
    assert "4.200 bis 5.200 €" in reply
