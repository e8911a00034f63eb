"""Reading and validating the knowledge source (YAML files under data/knowledge/).

`read_source(path)` returns a validated `Source` or raises `KnowledgeSourceError` whose
message names the file and the entry at fault. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from revierlotse.kb.models import QUALIFIER_NAMES
from revierlotse.replies import source_files

BAND_REF = re.compile(r"\{band:([a-z0-9_]+)\}")
LIST_KEYS = ("sections", "salary_bands", "topics", "facts", "overviews", "not_covered")
QUESTION_KEYS = {"asks": "", "asks_yes": "yes", "asks_no": "no"}  # question list -> polarity
RULE_OFFERS = ("best", "none")  # or a topic key
MAP_KEYS = ("source", "qualifiers", "replies", "question_forms")
SCALAR_LIST_KEYS = ("menu", "not_covered_examples")
REQUIRED_REPLIES = (
    "greeting", "capabilities", "out_of_scope", "other_place", "offer",
    "no_topic", "no_more_detail", "noted", "forgotten", "apology",
    "clarify", "clarify_other", "qualifier_not_covered",
    "offer_label", "no_answer", "yes_lead", "no_lead",
    "data_deleted", "privacy_notice", "feedback_thanks", "feedback_ask_comment", "feedback_comment_thanks",
)


class KnowledgeSourceError(ValueError):
    """The knowledge source is invalid; the message says where."""


@dataclass
class Source:
    source: Dict[str, str] = field(default_factory=dict)
    sections: List[Dict[str, Any]] = field(default_factory=list)
    qualifiers: Dict[str, Dict[str, str]] = field(default_factory=dict)
    salary_bands: List[Dict[str, Any]] = field(default_factory=list)
    topics: List[Dict[str, Any]] = field(default_factory=list)
    facts: List[Dict[str, Any]] = field(default_factory=list)
    overviews: List[Dict[str, Any]] = field(default_factory=list)
    not_covered: List[Dict[str, Any]] = field(default_factory=list)
    replies: Dict[str, str] = field(default_factory=dict)
    menu: List[str] = field(default_factory=list)
    # More questions a fact or overview answers (id -> questions), and questions the
    # article does not answer, both as people asked them (asked.yml).
    question_forms: Dict[str, List[str]] = field(default_factory=dict)
    not_covered_examples: List[str] = field(default_factory=list)
    content_hash: str = ""
    # Where each item came from, for error messages: (kind, key) -> file name.
    origins: Dict[tuple, str] = field(default_factory=dict)


def _files(path: Path) -> List[Path]:
    try:
        return source_files(path)
    except FileNotFoundError as exc:
        raise KnowledgeSourceError(str(exc)) from exc


def read_source(path: Path | str) -> Source:
    """Parse every YAML file at `path` (file or folder), merge and validate them."""
    src = Source()
    digest = hashlib.sha256()
    for file in _files(Path(path)):
        raw = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw)
        try:
            doc = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise KnowledgeSourceError(f"{file}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise KnowledgeSourceError(f"{file}: top level must be a mapping")
        unknown = set(doc) - set(LIST_KEYS) - set(MAP_KEYS) - set(SCALAR_LIST_KEYS)
        if unknown:
            raise KnowledgeSourceError(f"{file}: unknown top-level key(s): {', '.join(sorted(unknown))}")
        for key in LIST_KEYS:
            items = doc.get(key) or []
            if not isinstance(items, list):
                raise KnowledgeSourceError(f"{file}: '{key}' must be a list")
            for item in items:
                if not isinstance(item, dict):
                    raise KnowledgeSourceError(f"{file}: every item of '{key}' must be a mapping, got {item!r}")
                ident = item.get("id", item.get("key", item.get("number")))
                src.origins[(key, ident)] = file.name
            getattr(src, key).extend(items)
        if "menu" in doc:
            _need(isinstance(doc["menu"], list), f"{file}: 'menu' must be a list of topic keys")
            src.menu = [str(t) for t in doc["menu"]]
        examples = doc.get("not_covered_examples") or []
        _need(isinstance(examples, list) and all(isinstance(q, str) for q in examples),
              f"{file}: 'not_covered_examples' must be a list of questions")
        src.not_covered_examples.extend(q.strip() for q in examples if q.strip())
        for key in MAP_KEYS:
            mapping = doc.get(key) or {}
            if not isinstance(mapping, dict):
                raise KnowledgeSourceError(f"{file}: '{key}' must be a mapping")
            getattr(src, key).update(mapping)
    src.content_hash = digest.hexdigest()
    _validate(src)
    return src


def _where(src: Source, kind: str, ident: Any) -> str:
    return f"{src.origins.get((kind, ident), '?')}, {kind} '{ident}'"


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise KnowledgeSourceError(message)


def _unique(src: Source, kind: str, key: str) -> set:
    seen: set = set()
    for item in getattr(src, kind):
        ident = item.get(key)
        _need(ident is not None, f"{_where(src, kind, ident)}: missing '{key}'")
        _need(ident not in seen, f"{_where(src, kind, ident)}: duplicate {key}")
        seen.add(ident)
    return seen


def _validate(src: Source) -> None:
    _need(all(k in src.source for k in ("title", "hint", "band_format")), "source: needs 'title', 'hint' and 'band_format'")
    sections = _unique(src, "sections", "number")
    for s in src.sections:
        _need(isinstance(s["number"], int), f"{_where(src, 'sections', s['number'])}: number must be an integer")
        _need(bool(str(s.get("title", "")).strip()), f"{_where(src, 'sections', s['number'])}: missing title")

    for name, values in src.qualifiers.items():
        _need(name in QUALIFIER_NAMES, f"qualifiers: unknown qualifier '{name}' (known: {', '.join(QUALIFIER_NAMES)})")
        _need(isinstance(values, dict) and values, f"qualifiers: '{name}' needs a mapping value -> label")

    bands = _unique(src, "salary_bands", "key")
    for b in src.salary_bands:
        where = _where(src, "salary_bands", b["key"])
        for f in ("label", "min_eur", "max_eur", "period", "section"):
            _need(f in b, f"{where}: missing '{f}'")
        _need(isinstance(b["min_eur"], int) and isinstance(b["max_eur"], int), f"{where}: min_eur/max_eur must be integers")
        _need(0 < b["min_eur"] <= b["max_eur"], f"{where}: needs 0 < min_eur <= max_eur")
        _need(b["period"] in src.source["band_format"], f"{where}: no band_format for period '{b['period']}'")
        _need(b["section"] in sections, f"{where}: unknown section {b['section']}")

    topics = _unique(src, "topics", "key")
    for t in src.topics:
        _need(bool(str(t.get("label", "")).strip()), f"{_where(src, 'topics', t['key'])}: missing label")

    fact_ids = _unique(src, "facts", "id")
    for f in src.facts:
        where = _where(src, "facts", f["id"])
        _check_item(src, f, where, topics, sections)
        _need(isinstance(f.get("text"), str) and f["text"].strip(), f"{where}: empty text")
        for ref in BAND_REF.findall(f["text"]):
            _need(ref in bands, f"{where}: text refers to unknown salary band '{ref}'")
        quals = f.get("qualifiers") or {}
        _need(isinstance(quals, dict), f"{where}: qualifiers must be a mapping")
        for name, values in quals.items():
            _need(name in src.qualifiers, f"{where}: unknown qualifier '{name}'")
            for value in values if isinstance(values, list) else [values]:
                _need(value in src.qualifiers[name], f"{where}: unknown value '{value}' for qualifier '{name}'")
        for key in ("keywords", "places"):
            _need(isinstance(f.get(key) or [], list), f"{where}: '{key}' must be a list")
    overview_topics = set()
    for o in src.overviews:
        where = _where(src, "overviews", o.get("id"))
        _need(o.get("id") and o["id"] not in fact_ids, f"{where}: needs an id no fact has")
        _check_item(src, o, where, topics, None)  # an overview cites its facts' sections
        included = o.get("facts") or []
        _need(isinstance(included, list) and included, f"{where}: 'facts' must list the fact ids it shows")
        for fid in included:
            _need(fid in fact_ids, f"{where}: unknown fact '{fid}'")
        overview_topics.add(o["topic"])
    _unique(src, "overviews", "id")
    missing = topics - overview_topics
    _need(not missing, f"topics without an overview: {', '.join(sorted(missing))}")
    _unique(src, "not_covered", "key")
    for r in src.not_covered:
        where = _where(src, "not_covered", r["key"])
        _need(isinstance(r.get("reply"), str) and r["reply"].strip(), f"{where}: missing 'reply'")
        offer = r.get("offer", "best")
        _need(offer in RULE_OFFERS or offer in topics, f"{where}: offer must be best, none or a topic key")
        for key in ("patterns", "unless"):
            patterns = r.get(key) or []
            _need(isinstance(patterns, list) and (patterns or key == "unless"), f"{where}: '{key}' must be a list")
            for pattern in patterns:
                try:
                    re.compile(str(pattern))
                except re.error as exc:
                    raise KnowledgeSourceError(f"{where}: bad pattern {pattern!r}: {exc}") from exc
    overview_ids = {o["id"] for o in src.overviews}
    for ident, questions in src.question_forms.items():
        _need(ident in fact_ids or ident in overview_ids, f"question_forms: unknown fact '{ident}'")
        _need(isinstance(questions, list) and all(isinstance(q, str) and q.strip() for q in questions),
              f"question_forms: '{ident}' must be a list of questions")
    unknown_menu = [t for t in src.menu if t not in topics]
    _need(src.menu and not unknown_menu, f"menu: needs topic keys; unknown: {', '.join(unknown_menu)}")
    absent = [r for r in REQUIRED_REPLIES if not str(src.replies.get(r, "")).strip()]
    _need(not absent, f"replies: missing {', '.join(absent)}")


def _check_item(src: Source, item: Dict[str, Any], where: str, topics: set, sections: Optional[set]) -> None:
    """What facts and overviews share: a known topic, question forms, and (facts) a section."""
    _need("topic" in item, f"{where}: missing 'topic'")
    _need(item["topic"] in topics, f"{where}: unknown topic '{item['topic']}'")
    if sections is not None:
        _need("section" in item, f"{where}: missing 'section'")
        _need(item["section"] in sections, f"{where}: unknown section {item['section']}")
    forms = 0
    for key in QUESTION_KEYS:
        questions = item.get(key) or []
        _need(isinstance(questions, list) and all(isinstance(q, str) and q.strip() for q in questions),
              f"{where}: '{key}' must be a list of questions")
        forms += len(questions)
    _need(forms > 0, f"{where}: needs at least one question form (asks, asks_yes or asks_no)")


def questions_of(item: Dict[str, Any], extra: Sequence[str] = ()) -> List[tuple]:
    """(question, polarity) of every question form of a fact or overview, `extra` ones
    (from `question_forms`, polarity unknown) last."""
    forms = [(q.strip(), polarity) for key, polarity in QUESTION_KEYS.items() for q in item.get(key) or []]
    return forms + [(q.strip(), "") for q in extra]


def qualifiers_of(fact: Dict[str, Any]) -> Dict[str, List[str]]:
    """name -> allowed values (a single value in the YAML becomes a one-item list)."""
    return {name: v if isinstance(v, list) else [v] for name, v in (fact.get("qualifiers") or {}).items()}
