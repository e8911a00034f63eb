"""Two Rasa replicas sharing one PostgreSQL, one Redis and one action server lose nothing.

Twelve senders talk at the same time. Each sender's messages alternate between the two
replicas; some are sent as a pair at the same moment, one to each replica, so both
replicas work on the same conversation at once and only the Redis lock keeps their
turns apart (without it, one turn's events overwrite the other's). The trackers are then
read straight from the database.
"""

from __future__ import annotations

import json
import threading
import urllib.error
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional

import pytest
import redis
import sqlalchemy as sa

from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack
from tests.conftest import ARTIFACTS, free_port, new_sender, post_json, stack_overrides

pytestmark = pytest.mark.e2e

SENDERS = 12
# One sender's conversation: each inner list is sent at once (a pair goes to both
# replicas concurrently), the next step only after all replies of the previous one.
STEPS = [
    ["Hallo!"],
    ["Was verdient ein Einsteiger als IT Manager?"],
    ["Welche Fähigkeiten brauche ich als IT Manager?", "welche zertifikate sind gefragt?"],
    ["wie ist die arbeitskultur im pott?"],
    ["welche technik-trends kommen auf mich zu?", "hat der job zukunft?"],
    ["danke dir!"],
]
MESSAGES = [text for step in STEPS for text in step]


@dataclass
class Sent:
    sender: str
    text: str
    replica: int
    reply: Optional[list] = None
    error: Optional[str] = None


@pytest.fixture
def replicas(model, postgres_url, redis_url):
    """Action server + two Rasa servers on free ports, one database, one Redis."""
    engine = make_engine(postgres_url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    log_dir = ARTIFACTS / "logs" / "replicas"
    overrides = stack_overrides(postgres_url, REDIS_URL=redis_url)
    stack = Stack.default(model, overrides, log_dir=log_dir, replica_ports=[free_port()])
    with stack:
        yield stack.rasa_urls


def send(replica_urls: List[str], message: Sent) -> Sent:
    try:
        message.reply = post_json(f"{replica_urls[message.replica]}/webhooks/rest/webhook",
                                  {"sender": message.sender, "message": message.text}, timeout=120)
    except (urllib.error.URLError, OSError, ValueError) as error:
        message.error = repr(error)
    return message


def conversation(replica_urls: List[str], sender: str, start: threading.Barrier,
                 pool: ThreadPoolExecutor) -> List[Sent]:
    start.wait()
    sent, number = [], 0
    for step in STEPS:
        batch = []
        for text in step:
            batch.append(Sent(sender, text, replica=number % 2))
            number += 1
        sent += [future.result() for future in [pool.submit(send, replica_urls, m) for m in batch]]
    return sent


def stored_events(database_url: str, senders: List[str]):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT sender_id, type_name, data FROM events ORDER BY id")).all()
    engine.dispose()
    events = {sender: [] for sender in senders}
    for sender, type_name, data in rows:
        events[sender].append((type_name, json.loads(data)))
    return events


def test_two_replicas_keep_every_message_once_in_order_with_reply(replicas, postgres_url, redis_url):
    senders = [new_sender() for _ in range(SENDERS)]
    start = threading.Barrier(SENDERS)
    with ThreadPoolExecutor(SENDERS) as conversations, ThreadPoolExecutor(2 * SENDERS) as requests:
        futures = [conversations.submit(conversation, replicas, s, start, requests) for s in senders]
        sent = [m for future in futures for m in future.result()]

    assert len(sent) == SENDERS * len(MESSAGES)
    assert {m.replica for m in sent} == {0, 1}
    failed = [(m.sender, m.text, m.error) for m in sent if m.error]
    assert not failed, f"{len(failed)} requests failed: {failed[:3]}"
    unanswered = [(m.sender, m.text) for m in sent if not m.reply]
    assert not unanswered, f"{len(unanswered)} messages got no reply: {unanswered[:3]}"

    events = stored_events(postgres_url, senders)
    for sender in senders:
        user_texts = [data["text"] for kind, data in events[sender] if kind == "user"]
        assert Counter(user_texts) == Counter(MESSAGES), f"{sender}: {user_texts}"
        position = 0
        for step in STEPS:  # steps in order; a concurrent pair in either order
            assert sorted(user_texts[position:position + len(step)]) == sorted(step), f"{sender}: {user_texts}"
            position += len(step)
        # Every user message is followed by a bot reply before the next user message.
        kinds = [kind for kind, _ in events[sender] if kind in {"user", "bot"}]
        turns = "".join("u" if kind == "user" else "b" for kind in kinds)
        assert turns.count("u") == len(MESSAGES) and "uu" not in turns and turns.endswith("b"), turns

    client = redis.Redis.from_url(redis_url)
    try:
        left = [s for s in senders if client.exists(f"revierlotse:lock:{s}")]
    finally:
        client.close()
    assert not left, f"locks not released: {left}"
