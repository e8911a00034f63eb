"""The conversation store going away mid-conversation: no turn is answered as if stored.

A real Rasa server keeps its conversations in a PostgreSQL database of its own (the
action server reads the knowledge base from SQLite, so only the tracker store fails).
Turn 1 is stored; during the outage turn 2 gets the apology and is stored nowhere (not
in PostgreSQL, not in an in-memory fallback); after the database is back, turn 3 goes
on from turn 1: the level the user gave there shapes the answer.
"""

from __future__ import annotations

import json
import uuid
from typing import Iterator, List

import pytest
import sqlalchemy as sa

from revierlotse.replies import apology_text
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack
from tests.conftest import ARTIFACTS, POSTGRES_TEST_URL, Bot, new_sender, postgres_admin, stack_overrides

pytestmark = pytest.mark.e2e

APOLOGY = apology_text(PROJECT_ROOT / "data" / "knowledge")
ENTRY_QUESTION = "Was verdient ein Einsteiger als IT Manager?"
SENIOR_QUESTION = "Was verdient man mit Teamleitung in einem alten Industriebetrieb?"
OPEN_QUESTION = "Wie hoch ist das Gehalt?"
# With the level of turn 1 the answer is the entry band in industry; without any
# context it only notes the company type.
FOLLOW_UP = "und in einem Industriebetrieb?"
ENTRY_BAND = "4.200 bis 5.200 €"
SENIOR_BAND = "5.800 bis 7.200 €"


@pytest.fixture
def conversations_database() -> Iterator[str]:
    """An empty PostgreSQL database for the conversations, dropped afterwards."""
    name = f"revierlotse_tracker_{uuid.uuid4().hex[:10]}"
    admin = postgres_admin(f'CREATE DATABASE "{name}"', autocommit=True)
    try:
        yield POSTGRES_TEST_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def set_reachable(database: str, reachable: bool) -> None:
    """Take the database away (no new connections, open ones ended) or bring it back."""
    admin = sa.create_engine(POSTGRES_TEST_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(reachable).lower()}'))
            if not reachable:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                             {"d": database})
    finally:
        admin.dispose()


def stored_user_texts(url: str, sender: str) -> List[str]:
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT data FROM events WHERE sender_id = :s AND type_name = 'user' "
                                        "ORDER BY id"), {"s": sender}).scalars().all()
    finally:
        engine.dispose()
    return [json.loads(row)["text"] for row in rows]


def test_database_outage_mid_conversation_loses_nothing_and_stores_nothing_false(model, kb_url,
                                                                                conversations_database):
    database = conversations_database.rsplit("/", 1)[1]
    stack = Stack.default(model, stack_overrides(kb_url), log_dir=ARTIFACTS / "logs" / "tracker-outage")
    rasa = stack.service("rasa server")
    rasa.env = {**rasa.env, "DATABASE_URL": conversations_database}  # only the conversations in PostgreSQL
    logged_before = rasa.log_path.stat().st_size if rasa.log_path.exists() else 0
    with stack:
        bot = Bot(stack)
        sender = new_sender()
        first = bot.ask_text(ENTRY_QUESTION, sender)
        assert ENTRY_BAND in first and SENIOR_BAND not in first
        assert stored_user_texts(conversations_database, sender) == [ENTRY_QUESTION]

        set_reachable(database, False)
        try:
            assert bot.ask_text(SENIOR_QUESTION, sender) == APOLOGY  # cannot load: the apology alone
            assert bot.ask_text(OPEN_QUESTION, new_sender()) == APOLOGY  # a new conversation too
        finally:
            set_reachable(database, True)

        assert stored_user_texts(conversations_database, sender) == [ENTRY_QUESTION]  # turn 2 stored nowhere
        third = bot.ask_text(FOLLOW_UP, sender)
        assert "Industriebetrieb" in third
        assert ENTRY_BAND in third and SENIOR_BAND not in third  # the level from turn 1, not turn 2
        assert stored_user_texts(conversations_database, sender) == [ENTRY_QUESTION, FOLLOW_UP]
        assert rasa.proc.poll() is None, "no restart needed"

    log = rasa.log_path.read_bytes()[logged_before:].decode("utf-8", errors="replace")
    not_stored = [line for line in log.splitlines() if "turn not stored" in line]
    assert len(not_stored) == 2 and all("could not load the conversation" in line for line in not_stored)
    assert "InMemoryTrackerStore" not in log  # Rasa's fallback never ran
    assert SENIOR_QUESTION not in log and OPEN_QUESTION not in log  # no user text in the log
