"""Conversations in SQL (SQLite / PostgreSQL), atomic Redis locks, retention purge, compose file.

PostgreSQL tests get a fresh schema (`postgres_url`), Redis tests unique keys; both
clean up after themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import redis
import sqlalchemy as sa
from rasa.core.lock_store import InMemoryLockStore, LockError, LockStore
from rasa.core.utils import read_endpoints_from_path
from rasa.shared.core.domain import Domain
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack
from revierlotse.stores.lock_store import HeldLock, RedisAtomicLockStore
from revierlotse.stores.tracker_store import DatabaseTrackerStore
from tests.conftest import ARTIFACTS, Bot, new_sender, stack_overrides

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each storage test runs on the embedded default and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'revierlotse.db'}"
    return request.getfixturevalue("postgres_url")


def save_conversation(store: DatabaseTrackerStore, sender: str, texts, when: float) -> None:
    events = [ActionExecuted("action_listen", timestamp=when)]
    for offset, text in enumerate(texts):
        events += [UserUttered(text, timestamp=when + offset), BotUttered(f"Antwort auf {text}", timestamp=when + offset),
                   ActionExecuted("action_listen", timestamp=when + offset)]
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))


# --- tracker store ---------------------------------------------------------------

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


def test_endpoints_yml_builds_our_stores(monkeypatch, tmp_path, redis_url):
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:1/webhook")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("REDIS_URL", "")
    endpoints = read_endpoints_from_path(PROJECT_ROOT / "endpoints.yml")
    assert isinstance(LockStore.create(endpoints.lock_store), InMemoryLockStore)
    assert endpoints.tracker_store.type == "revierlotse.stores.tracker_store.DatabaseTrackerStore"
    assert endpoints.tracker_store.url == os.environ["DATABASE_URL"]

    monkeypatch.setenv("REDIS_URL", redis_url)
    endpoints = read_endpoints_from_path(PROJECT_ROOT / "endpoints.yml")
    assert isinstance(LockStore.create(endpoints.lock_store), RedisAtomicLockStore)

    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("SANIC_WORKERS", "2")  # several workers without Redis: refuse
    endpoints = read_endpoints_from_path(PROJECT_ROOT / "endpoints.yml")
    with pytest.raises(ValueError, match="REDIS_URL"):
        LockStore.create(endpoints.lock_store)


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


# --- lock store against the real Redis --------------------------------------------

@pytest.fixture
def locks(redis_url):
    """Two lock stores on one Redis, as two replicas have; unique keys, removed after."""
    prefix = f"test:lock:{uuid.uuid4().hex[:8]}:"
    stores = []

    def make(**kwargs) -> RedisAtomicLockStore:
        store = RedisAtomicLockStore(redis_url, key_prefix=prefix, **kwargs)
        stores.append(store)
        return store

    yield make
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def run(coro):
    return asyncio.run(coro)


def test_second_holder_cannot_acquire_until_release(locks):
    replica_a, replica_b = locks(), locks()

    async def scenario():
        held = await replica_a.try_acquire("c1")
        assert held is not None
        assert await replica_b.try_acquire("c1") is None
        assert await replica_a.try_acquire("c1") is None  # not re-entrant either
        assert await replica_b.try_acquire("c2") is not None  # other conversations are free
        assert await replica_a.release(held) is True
        assert await replica_b.try_acquire("c1") is not None
    run(scenario())


def test_acquire_sets_value_and_lifetime_in_one_command(locks):
    store = locks(lock_lifetime=30)

    async def scenario():
        held = await store.try_acquire("c1")
        assert await store.redis.get(store.key("c1")) == held.token.encode()
        assert 0 < await store.redis.pttl(store.key("c1")) <= 30_000  # never a lock without expiry
    run(scenario())


def test_release_by_non_owner_does_not_delete(locks):
    owner, other = locks(), locks()

    async def scenario():
        held = await owner.try_acquire("c1")
        assert await other.release(HeldLock("c1", "not-the-owner")) is False
        assert await other.redis.get(other.key("c1")) == held.token.encode()
        assert await other.try_acquire("c1") is None
        assert await owner.release(held) is True
        assert await owner.redis.exists(owner.key("c1")) == 0
    run(scenario())


def test_lock_expires_after_its_lifetime_and_stale_release_spares_the_new_holder(locks):
    crashed, waiting = locks(), locks()

    async def scenario():
        stale = await crashed.try_acquire("c1", lifetime=0.3)  # holder dies, never releases
        assert stale is not None
        fresh = await waiting.acquire("c1", wait_timeout=30)  # returns once the lock expired
        assert await crashed.release(stale) is False  # late release of the expired lock
        assert await waiting.redis.get(waiting.key("c1")) == fresh.token.encode()
        assert await waiting.release(fresh) is True
    run(scenario())


def test_waiting_gives_up_with_lock_error(locks):
    holder, waiter = locks(), locks()

    async def scenario():
        await holder.try_acquire("c1")
        with pytest.raises(LockError):
            await waiter.acquire("c1", wait_timeout=0)
    run(scenario())


def test_held_lock_is_renewed_while_its_turn_runs(locks):
    store, other = locks(lock_lifetime=0.3), locks()

    async def scenario():
        async with store.lock("c1") as held:
            await asyncio.sleep(1.0)  # a turn that outlasts the lifetime several times
            assert await other.try_acquire("c1") is None
            assert await store.redis.get(store.key("c1")) == held.token.encode()
        assert await other.try_acquire("c1") is not None  # released at the end of the turn
    run(scenario())


def test_turns_on_one_conversation_never_overlap_across_replicas(locks):
    replicas = [locks(), locks()]
    inside, overlaps, done = [0], [0], []

    async def turn(number: int) -> None:
        async with replicas[number % 2].lock("c1"):
            inside[0] += 1
            overlaps[0] = max(overlaps[0], inside[0])
            await asyncio.sleep(0)  # yield inside the critical section: others must wait
            await asyncio.sleep(0.005)
            done.append(number)
            inside[0] -= 1

    async def scenario():
        await asyncio.gather(*(turn(n) for n in range(30)))
    run(scenario())
    assert overlaps[0] == 1
    assert sorted(done) == list(range(30))


# --- retention purge -------------------------------------------------------------

def test_purge_deletes_old_conversations_and_keeps_fresh_ones(database_url):
    store = DatabaseTrackerStore(domain=Domain.empty(), host=database_url)
    now = time.time()
    old = [new_sender() for _ in range(3)]
    fresh = [new_sender() for _ in range(2)]
    for sender in old:
        save_conversation(store, sender, ["Hallo", "Was verdient ein Einsteiger?"], now - 45 * DAY)
    save_conversation(store, fresh[0], ["Hallo"], now - 1 * DAY)
    # Started long ago but still active: kept whole.
    save_conversation(store, fresh[1], ["Hallo"], now - 60 * DAY)
    save_conversation(store, fresh[1], ["Hallo", "und jetzt?"], now - 2 * DAY)

    result = subprocess.run(
        [sys.executable, "-m", "revierlotse.purge"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": database_url, "RETENTION_DAYS": "30"}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 Unterhaltungen gelöscht"), result.stdout
    assert "30 Tagen" in result.stdout

    with store.engine.connect() as connection:
        remaining = {row[0] for row in connection.execute(sa.text("SELECT DISTINCT sender_id FROM events"))}
        oldest_kept = connection.execute(
            sa.text("SELECT MIN(timestamp) FROM events WHERE sender_id = :s"), {"s": fresh[1]}).scalar()
    store.engine.dispose()
    assert remaining == set(fresh)
    assert oldest_kept < now - 59 * DAY  # the active conversation kept its beginning


def test_purge_without_conversations_reports_zero(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "revierlotse.purge", "--database-url", url], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 Unterhaltungen gelöscht")


# --- deployment ------------------------------------------------------------------

def compose_command():
    """`docker compose` (plugin) or `docker-compose` (standalone), whichever works."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_file_is_valid():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "--file", "docker-compose.yml", "config"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "POSTGRES_PASSWORD": "compose-config-check"}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("rasa", "actions", "db", "redis", "proxy"):
        assert f"  {service}:" in config
    assert "REDIS_URL: redis://redis:6379/0" in config


def test_compose_proxy_is_sticky_for_socketio_and_points_at_compose_services():
    import re

    import yaml

    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    nginx = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    mounted = [v.split(":")[0] for v in services["proxy"]["volumes"]]
    assert "./deploy/nginx.conf" in mounted
    upstreams = dict(re.findall(r"upstream (\w+) \{([^}]*)\}", nginx))
    assert "ip_hash;" in upstreams["rasa_sticky"]
    assert re.search(r"location /socket\.io/ \{[^}]*proxy_pass http://rasa_sticky;[^}]*Upgrade", nginx)
    for body in upstreams.values():
        for host in re.findall(r"server ([\w-]+):\d+;", body):
            assert host in services, f"nginx upstream {host} is not a compose service"
    assert services["rasa"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["rasa"]["environment"]["DATABASE_URL"].startswith("postgresql://")
