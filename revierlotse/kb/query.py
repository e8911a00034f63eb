"""The knowledge query layer: plain Python answers to plain questions. No Rasa here.

    kb = KnowledgeBase.from_url("sqlite:///var/revierlotse.db")
    kb.answer("salary", level="entry").text

Each call checks the loaded source's content hash (one small query) and rebuilds its
in-memory snapshot only when the knowledge base was reloaded, so edits take effect on
the next message and a database outage surfaces as `KnowledgeUnavailable`. An action
asks several questions per message: `kb.pinned()` checks once and answers them all
from that one version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from revierlotse.kb.models import (
    QUALIFIER_NAMES,
    Entry,
    Meta,
    Qualifier,
    Reply,
    SalaryBand,
    Section,
    Topic,
    engine_for,
    session_factory,
)
from revierlotse.kb.source import BAND_REF


class KnowledgeUnavailable(RuntimeError):
    """The knowledge base cannot be read (database down, or never loaded)."""


@dataclass(frozen=True)
class Answer:
    """What the bot says on one topic, and what it rests on."""

    topic: str
    text: str
    sections: Tuple[int, ...]
    entry_ids: Tuple[str, ...]
    # Qualifiers the answer was shaped by (name -> value), for follow-ups.
    qualifiers: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Band:
    key: str
    label: str
    min_eur: int
    max_eur: int
    period: str
    section: int


@dataclass(frozen=True)
class _EntryRow:
    id: str
    topic: str
    kind: str
    qualifiers: Dict[str, str]
    text: str
    section: int


@dataclass
class _Snapshot:
    content_hash: str
    meta: Dict[str, str]
    sections: Dict[int, str]
    topics: List[Tuple[str, str]]
    menu: List[Tuple[str, str]]
    qualifiers: Dict[str, Dict[str, str]]
    bands: Dict[str, Band]
    entries: List[_EntryRow]
    replies: Dict[str, str]


def _euro(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")


class KnowledgeBase:
    """Read-only access to the loaded knowledge, one method per kind of question."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)
        self._snapshot: Optional[_Snapshot] = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> "KnowledgeBase":
        """The shared instance for `url`: one engine, one snapshot per process.

        A new instance per call would re-read every table on its first question.
        """
        return _shared_instance(url)

    def pinned(self) -> "KnowledgeBase":
        """This knowledge as of now: one content-hash check here, none per later question.

        For one message's worth of questions (an action): fewer queries, and no answer
        mixes two versions when the knowledge base is reloaded meanwhile.
        """
        return _Pinned(self._current())

    # -- loading ---------------------------------------------------------------
    def _current(self) -> _Snapshot:
        try:
            with self._sessions() as session:
                content_hash = session.execute(select(Meta.value).where(Meta.key == "content_hash")).scalar()
                if content_hash is None:
                    raise KnowledgeUnavailable("knowledge base is empty: run `make kb`")
                snap = self._snapshot
                if snap is not None and snap.content_hash == content_hash:
                    return snap
                snap = self._read(session, content_hash)
        except SQLAlchemyError as exc:
            raise KnowledgeUnavailable(f"knowledge base unreachable: {exc.__class__.__name__}") from exc
        with self._lock:
            self._snapshot = snap
        return snap

    @staticmethod
    def _read(session, content_hash: str) -> _Snapshot:
        qualifiers: Dict[str, Dict[str, str]] = {}
        for q in session.execute(select(Qualifier)).scalars():
            qualifiers.setdefault(q.name, {})[q.value] = q.label
        return _Snapshot(
            content_hash=content_hash,
            meta={m.key: m.value for m in session.execute(select(Meta)).scalars()},
            sections={s.number: s.title for s in session.execute(select(Section)).scalars()},
            topics=[(t.key, t.label) for t in session.execute(select(Topic).order_by(Topic.position)).scalars()],
            menu=[
                (t.key, t.label)
                for t in session.execute(
                    select(Topic).where(Topic.menu_position.isnot(None)).order_by(Topic.menu_position)
                ).scalars()
            ],
            qualifiers=qualifiers,
            bands={
                b.key: Band(b.key, b.label, b.min_eur, b.max_eur, b.period, b.section_number)
                for b in session.execute(select(SalaryBand)).scalars()
            },
            entries=[
                _EntryRow(
                    e.id, e.topic, e.kind,
                    {n: getattr(e, n) for n in QUALIFIER_NAMES if getattr(e, n)},
                    e.text, e.section_number,
                )
                for e in session.execute(select(Entry).order_by(Entry.position)).scalars()
            ],
            replies={r.key: r.text for r in session.execute(select(Reply)).scalars()},
        )

    # -- questions -------------------------------------------------------------
    def topics(self) -> List[Tuple[str, str]]:
        """(key, German label) of every topic, in menu order."""
        return list(self._current().topics)

    def menu(self) -> List[Tuple[str, str]]:
        """(key, German label) of the topics offered as buttons, in order."""
        return list(self._current().menu)

    def has_topic(self, topic: str) -> bool:
        return any(key == topic for key, _ in self._current().topics)

    def qualifier_values(self) -> Dict[str, Dict[str, str]]:
        """Known qualifier values with their German labels, per qualifier name."""
        return {k: dict(v) for k, v in self._current().qualifiers.items()}

    def salary_bands(self) -> List[Band]:
        return list(self._current().bands.values())

    def answer(self, topic: str, **qualifiers: Optional[str]) -> Answer:
        """The answer on `topic` for a user described by `qualifiers`.

        The main entry is the most specific one whose qualifiers all match; every
        addendum whose qualifier matches and is not already used is appended.
        Unknown qualifier values are ignored rather than guessed at.
        """
        snap = self._current()
        given = self._known(snap, qualifiers)
        candidates = [e for e in snap.entries if e.topic == topic and self._matches(e, given)]
        mains = [e for e in candidates if e.kind == "main"]
        if not mains:
            raise KeyError(f"no answer for topic {topic!r}")
        main = max(mains, key=lambda e: len(e.qualifiers))  # stable: first of the most specific
        used = set(main.qualifiers)
        parts = [main]
        for e in candidates:
            if e.kind == "addendum" and not (set(e.qualifiers) & used):
                parts.append(e)
                used |= set(e.qualifiers)
        shaped_by = {k: v for e in parts for k, v in e.qualifiers.items()}
        return self._compose(snap, topic, parts, shaped_by)

    def more(self, topic: str, shown: Iterable[str] = ()) -> Optional[Answer]:
        """The next detail on `topic` not yet in `shown`, or None when all were given."""
        snap = self._current()
        seen = set(shown)
        for e in snap.entries:
            if e.topic == topic and e.kind == "detail" and e.id not in seen:
                return self._compose(snap, topic, [e], {})
        return None

    def reply(self, key: str, **values: str) -> str:
        """A fixed German reply (e.g. 'unknown_figure'), with {placeholders} filled in."""
        text = self._current().replies[key]
        return text.format(**values) if values else text

    def source_hint(self, sections: Sequence[int]) -> str:
        """'Quelle: Artikel …, Abschnitt …' for the given article sections."""
        return self._hint(self._current(), sections)

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _known(snap: _Snapshot, qualifiers: Dict[str, Optional[str]]) -> Dict[str, str]:
        return {
            name: value
            for name, value in qualifiers.items()
            if value and value in snap.qualifiers.get(name, {})
        }

    @staticmethod
    def _hint(snap: _Snapshot, sections: Sequence[int]) -> str:
        refs = " und ".join(f"{n} „{snap.sections[n]}“" for n in dict.fromkeys(sections))
        return snap.meta["source_hint"].format(title=snap.meta["source_title"], sections=refs)

    @staticmethod
    def _matches(entry: _EntryRow, given: Dict[str, str]) -> bool:
        return all(given.get(name) == value for name, value in entry.qualifiers.items())

    def _compose(self, snap: _Snapshot, topic: str, parts: List[_EntryRow], shaped_by: Dict[str, str]) -> Answer:
        def band(match) -> str:
            b = snap.bands[match.group(1)]
            return snap.meta[f"band_format_{b.period}"].format(min=_euro(b.min_eur), max=_euro(b.max_eur))

        body = "\n\n".join(BAND_REF.sub(band, e.text) for e in parts)
        sections = tuple(dict.fromkeys(e.section for e in parts))
        return Answer(
            topic=topic,
            text=f"{body}\n\n{self._hint(snap, sections)}",
            sections=sections,
            entry_ids=tuple(e.id for e in parts),
            qualifiers=shaped_by,
        )


class _Pinned(KnowledgeBase):
    """A KnowledgeBase answering from one snapshot (see `KnowledgeBase.pinned`)."""

    def __init__(self, snapshot: _Snapshot) -> None:  # noqa: D107 - no engine, no session, no reload
        self._snapshot = snapshot

    def _current(self) -> _Snapshot:
        return self._snapshot

    def pinned(self) -> "KnowledgeBase":
        return self


@lru_cache(maxsize=8)
def _shared_instance(url: str) -> KnowledgeBase:
    return KnowledgeBase(engine_for(url))
