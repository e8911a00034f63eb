"""Conversations as Rasa's SQLTrackerStore keeps them, read without sender ids.

Rasa 3.6's SQLTrackerStore writes one row per event into the table `events`
(id, sender_id, type_name, timestamp, intent_name, action_name, data = the event as
JSON). A conversation here is one conversation *session* of one sender: the events
between two `session_started` events (Rasa starts a new session after
`session_expiration_time` of silence). The sender id is only used to keep the rows of
one sender together while reading and never leaves this module.

Ratings of answers are slot events (actions/feedback.py): `answer_feedback` holds one
rating with the topic, the facts shown and the question; `feedback_comment` the line a
user wrote after a 👎, which belongs to the conversation's latest 👎 without one. The
user message that was that comment is marked, so figures do not count it as a question.

Works on SQLite and PostgreSQL alike (plain SQLAlchemy Core, JSON decoded in Python).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, Text, and_, create_engine, inspect, or_,
                        select)
from sqlalchemy.engine import Engine, make_url

USER, BOT, SESSION_STARTED, SLOT = "user", "bot", "session_started", "slot"
# Slots that hold feedback (actions/feedback.py) and the rating values they use.
FEEDBACK_SLOT, COMMENT_SLOT = "answer_feedback", "feedback_comment"
HELPFUL, UNHELPFUL = "helpful", "unhelpful"

# The columns of Rasa 3.6.21's `SQLTrackerStore.SQLEvent` that the report reads.
EVENTS = Table(
    "events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255)),
    Column("type_name", String(255)),
    Column("timestamp", Float),
    Column("action_name", String(255)),  # for slot events: the slot's name
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
    is_feedback_comment: bool = False  # the line written after a 👎, not a question


@dataclass
class Rating:
    """One 👍/👎 on an answer: its topic, the ids of the facts shown, the question it
    replied to and, for a 👎, the comment written afterwards."""

    timestamp: float
    rating: str  # HELPFUL or UNHELPFUL
    topic: Optional[str] = None
    facts: List[str] = field(default_factory=list)
    question: Optional[str] = None
    answered_at: Optional[float] = None  # timestamp of the rated answer
    comment: Optional[str] = None


@dataclass
class Conversation:
    """The messages of one conversation session, in order. Carries no sender id."""

    messages: List[Message] = field(default_factory=list)
    ratings: List[Rating] = field(default_factory=list)

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


def _rating(value: Any, timestamp: float) -> Optional[Rating]:
    if not isinstance(value, dict) or value.get("rating") not in (HELPFUL, UNHELPFUL):
        return None
    facts = value.get("facts")
    answered_at = value.get("answered_at")
    return Rating(
        timestamp=timestamp,
        rating=value["rating"],
        topic=value.get("topic") if isinstance(value.get("topic"), str) else None,
        facts=[str(f) for f in facts] if isinstance(facts, list) else [],
        question=value.get("question") if isinstance(value.get("question"), str) else None,
        answered_at=float(answered_at) if isinstance(answered_at, (int, float)) else None,
    )


def _add_feedback(conversation: Conversation, slot: Optional[str], value: Any, timestamp: float) -> None:
    """Apply one feedback slot event to `conversation` (in stored order)."""
    if slot == FEEDBACK_SLOT:
        rating = _rating(value, timestamp)
        if rating is None:
            return
        if rating.answered_at is not None:  # rated the same answer again: the latest counts
            conversation.ratings = [r for r in conversation.ratings if r.answered_at != rating.answered_at]
        conversation.ratings.append(rating)
    elif slot == COMMENT_SLOT and isinstance(value, str) and value.strip():
        open_ratings = [r for r in conversation.ratings if r.rating == UNHELPFUL and r.comment is None]
        if open_ratings:
            open_ratings[-1].comment = value.strip()
        for index in range(len(conversation.messages) - 1, -1, -1):
            if conversation.messages[index].from_user:
                conversation.messages[index] = replace(conversation.messages[index], is_feedback_comment=True)
                break


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
    query = select(EVENTS.c.sender_id, EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data).where(or_(
        EVENTS.c.type_name.in_((USER, BOT, SESSION_STARTED)),
        and_(EVENTS.c.type_name == SLOT, EVENTS.c.action_name.in_((FEEDBACK_SLOT, COMMENT_SLOT))),
    ))
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
                if conversation.messages or conversation.ratings:
                    yield conversation
                conversation = Conversation()
                current_sender = sender_id
            if type_name == SESSION_STARTED:
                continue
            try:
                event = json.loads(data or "{}")
            except ValueError:
                continue  # a row Rasa did not write; skip rather than fail the report
            if type_name == SLOT:
                _add_feedback(conversation, event.get("name"), event.get("value"), float(timestamp or 0.0))
                continue
            conversation.messages.append(_message(event, type_name == USER, float(timestamp or 0.0)))
        if conversation.messages or conversation.ratings:
            yield conversation
