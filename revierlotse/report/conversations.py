"""Conversations as Rasa's SQLTrackerStore keeps them, read without sender ids.

Rasa 3.6's SQLTrackerStore writes one row per event into the table `events`
(id, sender_id, type_name, timestamp, intent_name, action_name, data = the event as
JSON). A conversation here is one conversation *session* of one sender: the events
between two `session_started` events (Rasa starts a new session after
`session_expiration_time` of silence). The sender id is only used to keep the rows of
one sender together while reading and never leaves this module.

Works on SQLite and PostgreSQL alike (plain SQLAlchemy Core, JSON decoded in Python).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine, inspect, select
from sqlalchemy.engine import Engine, make_url

USER, BOT, SESSION_STARTED = "user", "bot", "session_started"

# The columns of Rasa 3.6.21's `SQLTrackerStore.SQLEvent` that the report reads.
EVENTS = Table(
    "events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255)),
    Column("type_name", String(255)),
    Column("timestamp", Float),
    Column("data", Text),
)


class NoConversations(LookupError):
    """There is nothing to report on: no database file or no `events` table yet."""


@dataclass(frozen=True)
class Message:
    """One message of a conversation; `intent`/`confidence`/`channel` only for user messages."""

    timestamp: float
    from_user: bool
    text: str = ""
    intent: Optional[str] = None
    confidence: Optional[float] = None
    channel: Optional[str] = None


@dataclass
class Conversation:
    """The messages of one conversation session, in order. Carries no sender id."""

    messages: List[Message] = field(default_factory=list)

    @property
    def user_messages(self) -> List[Message]:
        return [m for m in self.messages if m.from_user]

    @property
    def bot_messages(self) -> List[Message]:
        return [m for m in self.messages if not m.from_user]

    @property
    def channel(self) -> Optional[str]:
        """Rasa's name of the input channel of the first user message (e.g. `socketio`)."""
        users = self.user_messages
        return users[0].channel if users else None


def safe_url(url: str) -> str:
    """The database URL with its password hidden, for messages."""
    try:
        return repr(make_url(url))
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as a placeholder only
        return "<DATABASE_URL>"


def open_engine(url: str) -> Engine:
    """A read engine for the tracker store; never creates an SQLite file that is not there."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).exists():
            raise NoConversations(f"no database file at {safe_url(url)}")
        return create_engine(url, future=True)
    return create_engine(url, future=True, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def _message(event: dict, from_user: bool, timestamp: float) -> Message:
    text = event.get("text") or ""
    if not from_user:
        return Message(timestamp=timestamp, from_user=False, text=text)
    intent = (event.get("parse_data") or {}).get("intent") or {}
    confidence = intent.get("confidence")
    return Message(
        timestamp=timestamp,
        from_user=True,
        text=text,
        intent=intent.get("name"),
        confidence=float(confidence) if confidence is not None else None,
        channel=event.get("input_channel"),
    )


def read_conversations(
    engine: Engine, start: Optional[float] = None, end: Optional[float] = None
) -> Iterator[Conversation]:
    """Every conversation with at least one message in [start, end) (Unix seconds).

    Only messages inside the window are returned, so a conversation that crosses the
    window's edge contributes just its inside part. Raises `NoConversations` when the
    database has no `events` table.
    """
    if not inspect(engine).has_table(EVENTS.name):
        raise NoConversations("no table 'events'")
    query = select(EVENTS.c.sender_id, EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data).where(
        EVENTS.c.type_name.in_((USER, BOT, SESSION_STARTED))
    )
    if start is not None:
        query = query.where(EVENTS.c.timestamp >= start)
    if end is not None:
        query = query.where(EVENTS.c.timestamp < end)
    query = query.order_by(EVENTS.c.sender_id, EVENTS.c.id)

    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True).execute(query)
        current_sender: object = object()
        conversation = Conversation()
        for sender_id, type_name, timestamp, data in rows:
            if sender_id != current_sender or type_name == SESSION_STARTED:
                if conversation.messages:
                    yield conversation
                conversation = Conversation()
                current_sender = sender_id
            if type_name == SESSION_STARTED:
                continue
            try:
                event = json.loads(data or "{}")
            except ValueError:
                continue  # a row Rasa did not write; skip rather than fail the report
            conversation.messages.append(_message(event, type_name == USER, float(timestamp or 0.0)))
        if conversation.messages:
            yield conversation
