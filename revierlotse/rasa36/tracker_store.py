"""Rasa's SQL tracker store, built from one SQLAlchemy URL (DATABASE_URL).

Rasa's `SQLTrackerStore` wants dialect, host, port and database separately and builds
its engine without SQLite's WAL/busy timeout. This subclass takes the URL the rest of
Revierlotse uses, builds the engine the same way the knowledge base does
(`revierlotse.db.make_engine`), and keeps Rasa's table (`events`), its rows and
its rules (a conversation is the events since its latest `session_started`; a save
appends the events the database does not have yet). Conversations and knowledge base
live in the same database. endpoints.yml names it by its public path,
`revierlotse.stores.tracker_store.DatabaseTrackerStore`.

It lives in `revierlotse.rasa36` because it is built on `SQLTrackerStore`'s private
parts: it skips `SQLTrackerStore.__init__`, uses its `SQLEvent` table and `Base`, and
overrides `_retrieve` and `save`. Those are checked against Rasa 3.6.21 (`RELIES_ON`)
when this module is imported.

It reads and writes with prebuilt SQLAlchemy Core statements instead of ORM queries
and objects, and it skips Rasa's "how many events are stored?" count before each save
for a tracker it loaded itself: under the conversation lock, that number is the count
it read plus what it saved since. Together that was ~15 % of the Rasa server's CPU per
message (py-spy, 10 users).

It also keeps the trackers it saved (bounded by `KEPT_TRACKERS` and `KEPT_EVENTS`) for
the conversation's next message. Rebuilding a tracker from its rows (JSON, events,
replaying them) was the largest part of a load; a kept tracker is handed out again when
one query shows the conversation's rows unchanged since the save: as many
current-session rows as it has events, and none newer than its last event. A write by
another replica, a purge or a new session changes that, and the tracker is loaded from
the database as before. A kept tracker is handed out once (the next save keeps it
again), so no two callers share one.

A save whose new events carry the erasure marker (`revierlotse.erasure`) deletes every
row of the sender instead, drops the kept tracker and tells the other in-process caches.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Dict, Iterator, Optional, Text, Tuple

import sqlalchemy as sa
import sqlalchemy.exc
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy.orm import sessionmaker

from revierlotse.db import make_engine
from revierlotse.erasure import forget_in_memory, requests_erasure
from revierlotse.rasa36.core import Patch, PatchTargetError, Target, check_rasa_version, check_targets

_SQL = "rasa.core.tracker_store"


def _relied_upon(path: str, fingerprint: str) -> Target:
    return Target(_SQL, path, f"{path} sha256:{fingerprint}")


# The parts of Rasa's stores this one builds on; their 3.6.21 fingerprints.
RELIES_ON = (
    _relied_upon("SQLTrackerStore.__init__", "64e704d159dfa35b"),  # skipped: what it sets up
    _relied_upon("SQLTrackerStore.SQLEvent", "696a0661ef7643a9"),  # the table and its columns
    _relied_upon("SQLTrackerStore._retrieve", "c8adbf6f4b61ddd1"),  # overridden
    _relied_upon("SQLTrackerStore.retrieve", "0d99846daced97d3"),  # calls _retrieve
    _relied_upon("SQLTrackerStore.retrieve_full_tracker", "22234b03f47fbdd3"),  # calls _retrieve
    _relied_upon("SQLTrackerStore._event_query", "cd44f7901b860bfd"),  # the statements reproduce it
    _relied_upon("SQLTrackerStore.save", "57165e46eab3de08"),  # overridden
    _relied_upon("SQLTrackerStore.session_scope", "6775e1ede3ec8d2d"),  # uses self.sessionmaker
    _relied_upon("TrackerStore.__init__", "f607895f272e5ba7"),  # called instead
    _relied_upon("TrackerStore.stream_events", "efd3615f5340218a"),
)
# Nothing to replace; `revierlotse.rasa36.apply()` checks these with the patches' targets.
CHECK = Patch("database_tracker_store", False, (), lambda _originals: {}, relies_on=RELIES_ON,
              doc="DatabaseTrackerStore builds on SQLTrackerStore's private parts.")

logger = logging.getLogger(__name__)

# How long a starting Rasa server waits for the database (e.g. PostgreSQL still booting).
CONNECT_TIMEOUT_SECONDS = 60.0

# Attribute on a tracker this store loaded or saved: how many of its events (from the
# start of `tracker.events`) are in the database.
_STORED = "_revierlotse_stored_events"

# Saved trackers kept for their conversation's next message, at most this many and with
# at most this many events in all (a kept event costs ~1-3 KB; least recently saved go first).
KEPT_TRACKERS = 512
KEPT_EVENTS = 20_000


def _statements(events: sa.Table) -> Dict[str, Any]:
    """Rasa's queries (SQLTrackerStore._event_query) as Core statements, built once."""
    sender = sa.bindparam("sender_id")
    session_start = (
        sa.select(sa.func.max(events.c.timestamp))
        .where(events.c.sender_id == sender, events.c.type_name == SessionStarted.type_name)
        .scalar_subquery()
    )
    current = sa.and_(events.c.sender_id == sender,
                      sa.or_(events.c.timestamp >= session_start, session_start.is_(None)))
    count = sa.select(sa.func.count()).select_from(events).where(current)
    return {
        "current": sa.select(events.c.data).where(current).order_by(events.c.id),
        "all": sa.select(events.c.data).where(events.c.sender_id == sender).order_by(events.c.id),
        "count": count,
        # what a kept tracker must match: its events are the current session's rows
        # (count) and the conversation's newest row is its last event (timestamp)
        "mark": sa.select(
            count.scalar_subquery(),
            sa.select(sa.func.max(events.c.timestamp)).where(events.c.sender_id == sender).scalar_subquery(),
        ),
        "insert": events.insert(),
        "erase": events.delete().where(events.c.sender_id == sender),
    }


class DatabaseTrackerStore(SQLTrackerStore):
    """Conversations in the `events` table of the database at `url` (DATABASE_URL).

    endpoints.yml: `type: revierlotse.stores.tracker_store.DatabaseTrackerStore`,
    `url: ${DATABASE_URL}`. Rasa passes the URL as `host`.
    """

    def __init__(
        self,
        domain: Optional[Domain] = None,
        host: Optional[Text] = None,
        event_broker: Optional[EventBroker] = None,
        url: Optional[Text] = None,
        **kwargs: Any,
    ) -> None:
        database_url = url or host
        if not database_url:
            from revierlotse.settings import get_settings

            database_url = get_settings().database_url
        self.engine = make_engine(database_url)
        self._create_table()
        self.sessionmaker = sessionmaker(bind=self.engine)
        self._sql = _statements(self.SQLEvent.__table__)
        self._kept: "OrderedDict[Text, Tuple[DialogueStateTracker, Domain, tuple]]" = OrderedDict()
        self._kept_events = 0
        logger.info("Conversations are stored in %r.", self.engine.url)
        # Skip SQLTrackerStore.__init__: it would build a second engine from parts.
        TrackerStore.__init__(self, domain, event_broker, **kwargs)

    def _create_table(self) -> None:
        """Create `events` if missing, waiting for the database and tolerating a
        replica that creates it at the same moment."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
        while True:
            try:
                self.Base.metadata.create_all(self.engine)
                return
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError,
                    sqlalchemy.exc.IntegrityError) as error:
                # OperationalError: database not reachable (yet). ProgrammingError /
                # IntegrityError: another replica created the table concurrently; the
                # next create_all finds it and does nothing.
                if time.monotonic() > deadline:
                    raise
                logger.warning("Tracker store not ready, retrying: %s", error.__class__.__name__)
                time.sleep(1.0)

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool
                        ) -> Optional[DialogueStateTracker]:
        statement = self._sql["all" if fetch_events_from_all_sessions else "current"]
        with self.engine.connect() as connection:
            if not fetch_events_from_all_sessions:
                tracker = self._kept_tracker(connection, sender_id)
                if tracker is not None:
                    return tracker
            rows = connection.execute(statement, {"sender_id": sender_id}).scalars().all()
        if not self.domain or not rows:
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, [json.loads(data) for data in rows], self.domain.slots)
        if not fetch_events_from_all_sessions:
            setattr(tracker, _STORED, len(rows))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the tracker's events that the database does not have yet, or erase the
        conversation when this turn asked for it."""
        if self._asks_for_erasure(tracker):
            self.erase(tracker.sender_id)
            return
        await self.stream_events(tracker)
        ours = getattr(tracker, _STORED, None) is not None  # loaded or saved by this store before
        with self.engine.begin() as connection:
            rows = [self._row(tracker.sender_id, event) for event in self._unsaved_events(connection, tracker)]
            if rows:
                connection.execute(self._sql["insert"], rows)
        setattr(tracker, _STORED, len(tracker.events))
        self._forget(tracker.sender_id)
        if ours and tracker.events:  # not one built elsewhere (e.g. by the HTTP API)
            self._keep(tracker)

    @staticmethod
    def _asks_for_erasure(tracker: DialogueStateTracker) -> bool:
        """Whether the events not stored yet (all, for a tracker we do not know) carry
        the erasure marker."""
        stored = getattr(tracker, _STORED, None)
        start = stored if stored is not None and stored <= len(tracker.events) else 0
        return requests_erasure(itertools.islice(tracker.events, start, None))

    def erase(self, sender_id: Text) -> int:
        """Delete every stored event of `sender_id` (all sessions) and whatever this process
        keeps of the conversation; returns the number of rows deleted."""
        with self.engine.begin() as connection:
            deleted = connection.execute(self._sql["erase"], {"sender_id": sender_id}).rowcount
        self._forget(sender_id)
        forget_in_memory(sender_id)
        logger.info("Erased a conversation on request (%d stored events).", deleted)
        return deleted

    def _keep(self, tracker: DialogueStateTracker) -> None:
        """Keep `tracker` with the mark a fresh load must find: as many current-session
        rows as it has events (not so after a new session started in this turn: a load
        then starts at the new session), its last event the conversation's newest row."""
        mark = (len(tracker.events), max(event.timestamp for event in tracker.events))
        self._kept[tracker.sender_id] = (tracker, self.domain, mark)
        self._kept_events += len(tracker.events)
        while self._kept and (len(self._kept) > KEPT_TRACKERS or self._kept_events > KEPT_EVENTS):
            self._forget(next(iter(self._kept)))

    def _forget(self, sender_id: Text) -> Optional[Tuple[DialogueStateTracker, Domain, tuple]]:
        kept = self._kept.pop(sender_id, None)
        if kept is not None:
            self._kept_events -= kept[2][0]  # the event count its mark holds
        return kept

    def _kept_tracker(self, connection: sa.engine.Connection, sender_id: Text) -> Optional[DialogueStateTracker]:
        """The tracker kept at the last save, if the conversation's rows are unchanged."""
        kept = self._forget(sender_id)
        if kept is None:
            return None
        tracker, domain, mark = kept
        if domain is not self.domain or getattr(tracker, _STORED, None) != len(tracker.events):
            return None
        if tuple(connection.execute(self._sql["mark"], {"sender_id": sender_id}).one()) != mark:
            return None
        return tracker

    def _unsaved_events(self, connection: sa.engine.Connection, tracker: DialogueStateTracker) -> Iterator:
        stored = getattr(tracker, _STORED, None)
        if stored is None or stored > len(tracker.events):
            # A tracker this store did not load (new, copied, from the HTTP API): ask.
            stored = connection.execute(self._sql["count"], {"sender_id": tracker.sender_id}).scalar()
        return itertools.islice(tracker.events, stored, len(tracker.events))

    @staticmethod
    def _row(sender_id: Text, event) -> Dict[str, Any]:
        data = event.as_dict()
        return {
            "sender_id": sender_id,
            "type_name": event.type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }


def _check_rasa() -> None:
    check_rasa_version()
    problems = check_targets([CHECK])
    if problems:
        raise PatchTargetError("DatabaseTrackerStore does not fit this Rasa:\n  " + "\n  ".join(problems))


_check_rasa()
