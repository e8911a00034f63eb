"""Database engines: one way to build an SQLAlchemy engine from a URL, for everything.

The knowledge base, the tracker store, the purge command and the benchmark all use the
same database (DATABASE_URL) and build their engine here, so SQLite files get the same
pool and PRAGMAs everywhere and a failing query never carries user text in its error.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL this never corrupts the file; a power cut may lose the last turns.
    # (Production uses PostgreSQL.) Saves an fsync per conversation turn.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Engine for `url`; SQLite files get their folder, a pool, WAL and foreign keys."""
    sqlite_file = url.startswith("sqlite:///") and url != "sqlite:///:memory:"
    if sqlite_file:
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: a failing query's error (which Rasa logs) never carries user text.
    kwargs = {"future": True, "pool_pre_ping": True, "hide_parameters": True}
    if sqlite_file:
        # SQLAlchemy 1.4 gives SQLite files a NullPool: a new connection (and the
        # PRAGMAs above) for every tracker read and write. Pool them instead; the
        # connections move between the event loop and worker threads.
        kwargs["poolclass"] = QueuePool
        kwargs["connect_args"] = {"check_same_thread": False}
    elif not url.startswith("sqlite"):
        # Fail fast when the database is down, so callers can apologise instead of hanging.
        kwargs["connect_args"] = {"connect_timeout": 3}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One shared engine (and connection pool) per database URL."""
    return make_engine(url)


def session_factory(engine: Engine) -> sessionmaker:
    """Sessions on `engine` whose objects stay readable after commit."""
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)
