"""SQLAlchemy models of the knowledge base. No Rasa imports, no business logic."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Column, ForeignKey, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import declarative_base, sessionmaker

Base = declarative_base()


class Section(Base):
    """A section of the source article; every answer names one."""

    __tablename__ = "kb_sections"
    number = Column(Integer, primary_key=True, autoincrement=False)
    title = Column(String(200), nullable=False)


class Topic(Base):
    """A topic a user can ask about, with the German label used on buttons."""

    __tablename__ = "kb_topics"
    key = Column(String(40), primary_key=True)
    label = Column(String(80), nullable=False)
    position = Column(Integer, nullable=False)
    # Place in the topic menu (buttons), or None when the topic is not on the menu.
    menu_position = Column(Integer)


class Qualifier(Base):
    """A known value of a qualifier (level, background, company_type) with its German label."""

    __tablename__ = "kb_qualifiers"
    name = Column(String(40), primary_key=True)
    value = Column(String(40), primary_key=True)
    label = Column(String(120), nullable=False)


class SalaryBand(Base):
    """A salary band from the article, in EUR per `period`."""

    __tablename__ = "kb_salary_bands"
    key = Column(String(40), primary_key=True)
    label = Column(String(200), nullable=False)
    min_eur = Column(Integer, nullable=False)
    max_eur = Column(Integer, nullable=False)
    period = Column(String(20), nullable=False)
    section_number = Column(Integer, ForeignKey("kb_sections.number"), nullable=False)


class Entry(Base):
    """One piece of answer text on a topic, optionally restricted by qualifiers."""

    __tablename__ = "kb_entries"
    id = Column(String(80), primary_key=True)
    topic = Column(String(40), ForeignKey("kb_topics.key"), nullable=False, index=True)
    kind = Column(String(20), nullable=False)
    level = Column(String(40))
    background = Column(String(40))
    company_type = Column(String(40))
    text = Column(Text, nullable=False)
    section_number = Column(Integer, ForeignKey("kb_sections.number"), nullable=False)
    position = Column(Integer, nullable=False)


class Reply(Base):
    """Fixed German replies that are not tied to a topic (honest 'no data', apology...)."""

    __tablename__ = "kb_replies"
    key = Column(String(40), primary_key=True)
    text = Column(Text, nullable=False)


class Meta(Base):
    """Key/value facts about the loaded source (content hash, article title, hint template)."""

    __tablename__ = "kb_meta"
    key = Column(String(40), primary_key=True)
    value = Column(Text, nullable=False)


QUALIFIER_NAMES = ("level", "background", "company_type")


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
        from pathlib import Path

        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: a failing query's error (which Rasa logs) never carries user text.
    kwargs = {"future": True, "pool_pre_ping": True, "hide_parameters": True}
    if sqlite_file:
        # SQLAlchemy 1.4 gives SQLite files a NullPool: a new connection (and the
        # PRAGMAs above) for every tracker read and write. Pool them instead; the
        # connections move between the event loop and worker threads.
        from sqlalchemy.pool import QueuePool

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
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)
