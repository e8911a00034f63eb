"""Loading a validated knowledge source into the database, all or nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from revierlotse.db import session_factory
from revierlotse.kb.models import (
    Base,
    Fact,
    FactQuestion,
    Meta,
    Qualifier,
    Reply,
    SalaryBand,
    Section,
    Topic,
    UncoveredExample,
    UncoveredRule,
)
from revierlotse.kb.source import qualifiers_of, questions_of, read_source


# Knowledge tables of earlier schemas, dropped on the next load.
LEGACY_TABLES = ("kb_entries",)


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
    facts: int
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
            return LoadResult(False, len(src.facts), src.content_hash)
        # The knowledge tables hold nothing but the source: rebuild them from scratch,
        # inside this transaction (other tables in the database are not touched).
        connection = session.connection()
        for table in LEGACY_TABLES:  # would keep foreign keys to the tables dropped below
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
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
        sections_of = {f["id"]: f["section"] for f in src.facts}
        items = [(f, False) for f in src.facts] + [(o, True) for o in src.overviews]
        for position, (item, overview) in enumerate(items):
            session.add(
                Fact(
                    id=item["id"], kind="overview" if overview else "fact", topic=item["topic"],
                    section_number=sections_of[item["facts"][0]] if overview else item["section"],
                    text=str(item.get("intro" if overview else "text") or "").strip(),
                    includes=" ".join(item["facts"]) if overview else "",
                    keywords=" ".join(str(k).lower() for k in item.get("keywords") or []),
                    places=" ".join(str(p).lower() for p in item.get("places") or []),
                    qualifiers=json.dumps(qualifiers_of(item), sort_keys=True),
                    position=position,
                )
            )
        session.flush()
        session.add_all(
            FactQuestion(fact_id=item["id"], text=question, polarity=polarity)
            for item, _ in items
            for question, polarity in questions_of(item, src.question_forms.get(item["id"], ()))
        )
        session.add_all(UncoveredExample(text=q) for q in src.not_covered_examples)
        session.add_all(
            UncoveredRule(
                key=r["key"], position=i, patterns=json.dumps([str(p) for p in r["patterns"]]),
                unless=json.dumps([str(p) for p in r.get("unless") or []]),
                reply=str(r["reply"]).strip(), offer=str(r.get("offer", "best")),
            )
            for i, r in enumerate(src.not_covered)
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
    return LoadResult(True, len(src.facts), src.content_hash)


def _loaded_version(session) -> str | None:
    if not inspect(session.connection()).has_table(Meta.__tablename__):
        return None
    try:
        with session.begin_nested():
            return session.execute(select(Meta.value).where(Meta.key == "content_hash")).scalar()
    except SQLAlchemyError:  # an older schema: treat as not loaded
        return None
