"""Rasa's SQL tracker store, built from one SQLAlchemy URL (DATABASE_URL).

Rasa's `SQLTrackerStore` wants dialect, host, port and database separately and builds
its engine without SQLite's WAL/busy timeout. This subclass takes the URL the rest of
Revierlotse uses, builds the engine the same way the knowledge base does
(`revierlotse.kb.models.make_engine`), and keeps Rasa's table (`events`), queries and
save logic unchanged. Conversations and knowledge base live in the same database.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional, Text

import sqlalchemy.exc
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from sqlalchemy.orm import sessionmaker

from revierlotse.kb.models import make_engine

logger = logging.getLogger(__name__)

# How long a starting Rasa server waits for the database (e.g. PostgreSQL still booting).
CONNECT_TIMEOUT_SECONDS = 60.0


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
