"""Loading a validated knowledge source into the database, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hashlib

from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from revierlotse.kb.models import (
    Base,
    Entry,
    Meta,
    Qualifier,
    Reply,
    SalaryBand,
    Section,
    Topic,
    session_factory,
)
from revierlotse.kb.source import qualifiers_of, read_source


def schema_version() -> str:
    """A fingerprint of the knowledge tables' definition, so a changed schema reloads."""
    spec = sorted(
        f"{table.name}.{column.name}:{column.type}:{column.nullable}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
    )
    return hashlib.sha256("\n".join(spec).encode()).hexdigest()[:12]


@dataclass
class LoadResult:
    changed: bool
    entries: int
    content_hash: str


def load_knowledge(engine: Engine, path: Path | str) -> LoadResult:
    """Validate the source at `path` and replace the knowledge base with it.

    Runs in one transaction: on any error nothing changes. Loading the same source
    twice leaves the database as it was (`changed` is False the second time).
    """
    src = read_source(path)
    version = f"{src.content_hash}:{schema_version()}"
    with session_factory(engine).begin() as session:
        if _loaded_version(session) == version:
            return LoadResult(False, len(src.entries), src.content_hash)
        # The knowledge tables hold nothing but the source: rebuild them from scratch,
        # inside this transaction (other tables in the database are not touched).
        connection = session.connection()
        Base.metadata.drop_all(connection)
        Base.metadata.create_all(connection)
        session.add_all(Section(number=s["number"], title=s["title"]) for s in src.sections)
        session.flush()
        menu = {key: i for i, key in enumerate(src.menu)}
        session.add_all(
            Topic(key=t["key"], label=t["label"], position=i, menu_position=menu.get(t["key"]))
            for i, t in enumerate(src.topics)
        )
        session.add_all(
            Qualifier(name=name, value=value, label=label)
            for name, values in src.qualifiers.items()
            for value, label in values.items()
        )
        session.add_all(
            SalaryBand(
                key=b["key"], label=b["label"], min_eur=b["min_eur"], max_eur=b["max_eur"],
                period=b["period"], section_number=b["section"],
            )
            for b in src.salary_bands
        )
        session.flush()
        session.add_all(
            Entry(
                id=e["id"], topic=e["topic"], kind=e["kind"], text=e["text"].strip(),
                section_number=e["section"], position=i, **qualifiers_of(e),
            )
            for i, e in enumerate(src.entries)
        )
        session.add_all(Reply(key=k, text=str(v).strip()) for k, v in src.replies.items())
        session.add_all(
            [
                Meta(key="content_hash", value=version),
                Meta(key="source_title", value=src.source["title"]),
                Meta(key="source_hint", value=src.source["hint"]),
                *(Meta(key=f"band_format_{period}", value=fmt) for period, fmt in src.source["band_format"].items()),
            ]
        )
    return LoadResult(True, len(src.entries), src.content_hash)


def _loaded_version(session) -> str | None:
    if not inspect(session.connection()).has_table(Meta.__tablename__):
        return None
    try:
        with session.begin_nested():
            return session.execute(select(Meta.value).where(Meta.key == "content_hash")).scalar()
    except SQLAlchemyError:  # an older schema: treat as not loaded
        return None
