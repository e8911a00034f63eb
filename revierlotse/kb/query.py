"""The knowledge query layer: plain Python answers to plain questions. No Rasa here.

    kb = KnowledgeBase.from_url("sqlite:///var/revierlotse.db")
    kb.answer_question("Ist die Arbeit dort eher öde?", topic_prior={"outlook": 0.8}).text
    kb.answer_topic("salary", level="entry").text

Each call checks the loaded source's content hash (one small query) and rebuilds its
in-memory snapshot only when the knowledge base was reloaded, so edits take effect on
the next message and a database outage surfaces as `KnowledgeUnavailable`. An action
asks several questions per message: `kb.pinned()` checks once and answers them all
from that one version. How a question finds its fact: selection.py (ranking),
uncovered.py (what the article does not answer), answering.py (the reply).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from revierlotse.db import engine_for, session_factory
from revierlotse.kb.answering import Answer, Composer, FactRow, Thresholds
from revierlotse.kb.lexical import clauses, is_elliptic, question_part
from revierlotse.kb.models import (
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
from revierlotse.kb.selection import FactIndex, Item, Weights  # noqa: F401 - Weights: for callers tuning
from revierlotse.kb.uncovered import Rule, compile_rule

__all__ = ["Answer", "Band", "KnowledgeBase", "KnowledgeUnavailable"]

MAX_TOPICS_PER_MESSAGE = 3


class KnowledgeUnavailable(RuntimeError):
    """The knowledge base cannot be read (database down, or never loaded)."""


@dataclass(frozen=True)
class Band:
    key: str
    label: str
    min_eur: int
    max_eur: int
    period: str
    section: int


class _Snapshot:
    """One loaded version of the knowledge, with its ranking index built on first use."""

    def __init__(self, content_hash: str, meta: Dict[str, str], sections: Dict[int, str],
                 topics: List[Tuple[str, str]], menu: List[Tuple[str, str]],
                 qualifiers: Dict[str, Dict[str, str]], bands: Dict[str, Band], facts: Dict[str, FactRow],
                 questions: Dict[str, List[Tuple[str, str]]], rules: List[Rule], examples: List[str],
                 replies: Dict[str, str]) -> None:
        self.content_hash = content_hash
        self.meta = meta
        self.sections = sections
        self.topics = topics
        self.menu = menu
        self.qualifiers = qualifiers
        self.bands = bands
        self.facts = facts
        self.questions = questions
        self.rules = rules
        self.examples = examples
        self.replies = replies
        self._index: Optional[FactIndex] = None
        self._index_lock = threading.Lock()

    def index(self) -> FactIndex:
        """The question-form embeddings, computed once per knowledge version."""
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    from revierlotse.nlu.encoder import encode  # numpy only; loads the weights once

                    items = [
                        Item(f.id, f.kind, f.topic, tuple(self.questions.get(f.id, ())), f.text, f.keywords,
                             f.qualifiers)
                        for f in self.facts.values()
                    ]
                    self._index = FactIndex(items, encode, self.examples)
        return self._index

    def composer(self, thresholds: Thresholds) -> Composer:
        return Composer(self.facts, self.bands, self.replies, self.meta, self.sections, self.rules, thresholds)


class KnowledgeBase:
    """Read-only access to the loaded knowledge, one method per kind of question."""

    weights = Weights()
    thresholds = Thresholds()

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
        return _Pinned(self._current(), self.weights, self.thresholds)

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
        questions: Dict[str, List[Tuple[str, str]]] = {}
        for q in session.execute(select(FactQuestion).order_by(FactQuestion.id)).scalars():
            questions.setdefault(q.fact_id, []).append((q.text, q.polarity))
        facts = {
            f.id: FactRow(
                id=f.id, kind=f.kind, topic=f.topic, section=f.section_number, text=f.text,
                includes=tuple(f.includes.split()), keywords=tuple(f.keywords.split()),
                places=tuple(f.places.split()),
                qualifiers={k: tuple(v) for k, v in json.loads(f.qualifiers).items()},
            )
            for f in session.execute(select(Fact).order_by(Fact.position)).scalars()
        }
        examples = [e.text for e in session.execute(select(UncoveredExample).order_by(UncoveredExample.id)).scalars()]
        rules = [
            compile_rule(r.key, json.loads(r.patterns), json.loads(r.unless), r.reply, r.offer)
            for r in session.execute(select(UncoveredRule).order_by(UncoveredRule.position)).scalars()
        ]
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
            facts=facts,
            questions=questions,
            rules=rules,
            examples=examples,
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

    def answer_question(
        self,
        question: str,
        topic_prior: Mapping[str, float] = {},  # noqa: B006 - read only
        qualifiers: Mapping[str, Optional[str]] = {},  # noqa: B006 - read only
        place: Optional[str] = None,
        previous_topic: Optional[str] = None,
        topics: Sequence[str] = (),
        mentioned: Sequence[str] = (),
    ) -> List[Answer]:
        """The answer to a user's question in their own words (one per topic asked).

        `topic_prior`: the NLU's probability per topic; `qualifiers`: what the user told
        about themselves (level, background, company_type); `place`: a place the
        question names (canonical value, 'duisburg' for the article's own region);
        `topics`: topics NLU found in separate clauses; a clause whose best fact is of
        another of these topics gets its own answer.
        `mentioned`: the qualifier names the question itself states. Says first when the article does not answer what was asked.
        """
        snap = self._current()
        ranked = snap.index().rank(question, topic_prior, qualifiers, previous_topic, self.weights)
        composer = snap.composer(self.thresholds)
        unfamiliar = snap.index().unfamiliar_terms(question_part(question))
        answers = [composer.for_question(question, ranked, topic_prior, qualifiers, place, previous_topic, mentioned,
                                         unfamiliar)]
        if answers[0].uncovered:
            return answers
        wanted = [t for t in topics if t != answers[0].topic]
        for clause in clauses(question) if wanted else ():
            if len(answers) >= MAX_TOPICS_PER_MESSAGE:
                break
            within = snap.index().rank(clause, {}, qualifiers, None, self.weights)
            top = within[0]
            if top.item.topic in wanted and top.score >= self.thresholds.clause_min:
                wanted.remove(top.item.topic)
                answers.append(composer.for_question(clause, within, {}, qualifiers, place, previous_topic))
        return answers

    @staticmethod
    def is_elliptic(question: str) -> bool:
        """A follow-up that leans on the last answer ("und im Mittelstand?"): at most two
        content words."""
        return is_elliptic(question)

    def answer_topic(self, topic: str, **qualifiers: Optional[str]) -> Answer:
        """The general answer on `topic` (its overview) for a user described by `qualifiers`:
        a fact meant for users like this one leads (e.g. the entry band for a beginner)."""
        return self._current().composer(self.thresholds).for_topic(topic, qualifiers)

    def follow_up(self, topic: str, mentioned: Sequence[str], **qualifiers: Optional[str]) -> Optional[Answer]:
        """The facts of `topic` meant for what the user just told (qualifier names in
        `mentioned`), or None when the topic has none for it."""
        return self._current().composer(self.thresholds).for_follow_up(topic, mentioned, qualifiers)

    def more(self, topic: str, shown: Sequence[str] = (), question: str = "") -> Optional[Answer]:
        """The fact on `topic` not yet in `shown` that best continues the conversation
        ("warum?", "erzähl mehr"): closest to the user's words and to the fact shown
        last; None when all were given."""
        snap = self._current()
        seen = set(shown)
        if not any(f.topic == topic and f.kind == "fact" and f.id not in seen for f in snap.facts.values()):
            return None
        last = next((i for i in reversed(list(shown)) if i in snap.facts), None)
        ranked = snap.index().continuations(question or topic, topic, last, seen)
        return snap.composer(self.thresholds).facts_answer([ranked[0]], topic) if ranked else None

    def reply(self, key: str, **values: str) -> str:
        """A fixed German reply (e.g. 'other_place'), with {placeholders} filled in."""
        text = self._current().replies[key]
        return text.format(**values) if values else text

    def source_hint(self, sections: Sequence[int]) -> str:
        """'Quelle: Artikel …, Abschnitt …' for the given article sections."""
        return self._current().composer(self.thresholds).source_hint(sections)


class _Pinned(KnowledgeBase):
    """A KnowledgeBase answering from one snapshot (see `KnowledgeBase.pinned`)."""

    def __init__(self, snapshot: _Snapshot, weights: Weights, thresholds: Thresholds) -> None:  # noqa: D107
        self._snapshot = snapshot
        self.weights = weights
        self.thresholds = thresholds

    def _current(self) -> _Snapshot:
        return self._snapshot

    def pinned(self) -> "KnowledgeBase":
        return self


@lru_cache(maxsize=8)
def _shared_instance(url: str) -> KnowledgeBase:
    return KnowledgeBase(engine_for(url))
