"""`make purge`: delete conversations older than RETENTION_DAYS (DSGVO) and say how many.

A conversation is everything stored for one sender id. It is deleted as a whole once
its newest event is older than the retention period; a conversation with any recent
activity is kept whole, because Rasa rebuilds a tracker from its events and a tracker
cut in the middle would lose its slots. Run it daily (cron, systemd timer, a CI job).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from revierlotse.db import make_engine
from revierlotse.settings import get_settings

SECONDS_PER_DAY = 86400
# Rasa's SQLTrackerStore table (revierlotse.stores.tracker_store): only the columns used
# here, so purging does not import Rasa.
EVENTS = sa.table("events", sa.column("sender_id"), sa.column("timestamp"))
_CHUNK = 500


def expired_senders(engine: Engine, retention_days: float, now: Optional[float] = None) -> List[str]:
    """Sender ids whose newest event is older than `retention_days`."""
    if not sa.inspect(engine).has_table("events"):
        return []
    cutoff = (time.time() if now is None else now) - retention_days * SECONDS_PER_DAY
    query = (sa.select(EVENTS.c.sender_id).group_by(EVENTS.c.sender_id)
             .having(sa.func.max(EVENTS.c.timestamp) < cutoff))
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(query)]


def purge_conversations(engine: Engine, retention_days: float, now: Optional[float] = None) -> int:
    """Delete every conversation older than `retention_days`; return how many."""
    senders = expired_senders(engine, retention_days, now)
    with engine.begin() as connection:
        for start in range(0, len(senders), _CHUNK):
            chunk = senders[start:start + _CHUNK]
            connection.execute(sa.delete(EVENTS).where(EVENTS.c.sender_id.in_(chunk)))
    return len(senders)


def main(argv=None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=settings.retention_days,
                        help="retention period in days (default: RETENTION_DAYS=%(default)s)")
    parser.add_argument("--database-url", default=settings.database_url, help="default: DATABASE_URL")
    args = parser.parse_args(argv)
    if args.days < 0:
        parser.error("--days must not be negative")
    engine = make_engine(args.database_url)
    try:
        deleted = purge_conversations(engine, args.days)
    finally:
        engine.dispose()
    print(f"{deleted} Unterhaltungen gelöscht, die seit mehr als {args.days:g} Tagen ruhen "
          f"({engine.url!r}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
