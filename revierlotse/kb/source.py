"""Reading and validating the knowledge source (YAML files under data/knowledge/).

`read_source(path)` returns a validated `Source` or raises `KnowledgeSourceError` whose
message names the file and the entry at fault. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from revierlotse.kb.models import QUALIFIER_NAMES

BAND_REF = re.compile(r"\{band:([a-z0-9_]+)\}")
ENTRY_KINDS = ("main", "addendum", "detail")
LIST_KEYS = ("sections", "salary_bands", "topics", "entries")
MAP_KEYS = ("source", "qualifiers", "replies")
SCALAR_LIST_KEYS = ("menu",)
REQUIRED_REPLIES = (
    "greeting", "capabilities", "out_of_scope", "other_place", "offer",
    "no_topic", "no_more_detail", "noted", "forgotten", "apology",
    "clarify", "clarify_other", "qualifier_not_covered",
)
# Said when even the knowledge source cannot be read (a broken deployment).
LAST_RESORT_APOLOGY = "Entschuldige, da ist etwas schiefgelaufen. Bitte versuch es später noch einmal."


class KnowledgeSourceError(ValueError):
    """The knowledge source is invalid; the message says where."""


@dataclass
class Source:
    source: Dict[str, str] = field(default_factory=dict)
    sections: List[Dict[str, Any]] = field(default_factory=list)
    qualifiers: Dict[str, Dict[str, str]] = field(default_factory=dict)
    salary_bands: List[Dict[str, Any]] = field(default_factory=list)
    topics: List[Dict[str, Any]] = field(default_factory=list)
    entries: List[Dict[str, Any]] = field(default_factory=list)
    replies: Dict[str, str] = field(default_factory=dict)
    menu: List[str] = field(default_factory=list)
    content_hash: str = ""
    # Where each item came from, for error messages: (kind, key) -> file name.
    origins: Dict[tuple, str] = field(default_factory=dict)


def _files(path: Path) -> List[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yml"), *path.glob("*.yaml")])
        if not files:
            raise KnowledgeSourceError(f"{path}: no .yml files found")
        return files
    if not path.exists():
        raise KnowledgeSourceError(f"{path}: file not found")
    return [path]


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

    _unique(src, "entries", "id")
    mains = set()
    for e in src.entries:
        where = _where(src, "entries", e["id"])
        for f in ("topic", "kind", "section", "text"):
            _need(f in e, f"{where}: missing '{f}'")
        _need(e["topic"] in topics, f"{where}: unknown topic '{e['topic']}'")
        _need(e["kind"] in ENTRY_KINDS, f"{where}: kind must be one of {', '.join(ENTRY_KINDS)}")
        _need(e["section"] in sections, f"{where}: unknown section {e['section']}")
        _need(isinstance(e["text"], str) and e["text"].strip(), f"{where}: empty text")
        quals = e.get("qualifiers") or {}
        _need(isinstance(quals, dict), f"{where}: qualifiers must be a mapping")
        for name, value in quals.items():
            _need(name in src.qualifiers, f"{where}: unknown qualifier '{name}'")
            _need(value in src.qualifiers[name], f"{where}: unknown value '{value}' for qualifier '{name}'")
        if e["kind"] == "addendum":
            _need(len(quals) == 1, f"{where}: an addendum needs exactly one qualifier")
        for ref in BAND_REF.findall(e["text"]):
            _need(ref in bands, f"{where}: text refers to unknown salary band '{ref}'")
        if e["kind"] == "main" and not quals:
            mains.add(e["topic"])
    missing = topics - mains
    _need(not missing, f"topics without an unqualified main entry: {', '.join(sorted(missing))}")
    unknown_menu = [t for t in src.menu if t not in topics]
    _need(src.menu and not unknown_menu, f"menu: needs topic keys; unknown: {', '.join(unknown_menu)}")
    absent = [r for r in REQUIRED_REPLIES if not str(src.replies.get(r, "")).strip()]
    _need(not absent, f"replies: missing {', '.join(absent)}")


def qualifiers_of(entry: Dict[str, Any]) -> Dict[str, Optional[str]]:
    quals = entry.get("qualifiers") or {}
    return {name: quals.get(name) for name in QUALIFIER_NAMES}


_apology_cache: Dict[tuple, str] = {}


def apology_text(path: Path | str) -> str:
    """The apology from the source files themselves, for when the database is down.

    Cached per file modification time; falls back to a fixed sentence if the source
    cannot be read at all.
    """
    try:
        files = _files(Path(path))
        key = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        if key not in _apology_cache:
            replies: Dict[str, Any] = {}
            for file in files:
                replies.update((yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("replies") or {})
            _apology_cache.clear()
            _apology_cache[key] = str(replies["apology"]).strip()
        return _apology_cache[key]
    except Exception:  # noqa: BLE001 - this is the last line of defence
        return LAST_RESORT_APOLOGY
