"""What every channel does to user text, and to the request carrying it, before Rasa sees it.

Rasa parses a message that starts with `/` as an intent (and JSON after it as
entities/slots), bypassing NLU. Only the payloads our own buttons send may do that:
`/ask_<topic>`, `/greet`, `/ask_capabilities`, `/feedback_helpful`, `/feedback_unhelpful`,
`/privacy_notice` and `/delete_data`, bare, with nothing after them, and only for an
intent the domain (domain.yml) declares: an unknown `/ask_xyz` would otherwise reach
Rasa as an intent it does not know (a warning in its log and registry per message).
Any other leading slash is dropped so the text goes through NLU like any other.
Control characters (NUL included) are removed; line breaks and tabs become spaces.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, FrozenSet, Optional

import yaml

from revierlotse.intents import BUTTON_INTENT
from revierlotse.settings import PROJECT_ROOT

DOMAIN_FILE = PROJECT_ROOT / "domain.yml"

BUTTON_PAYLOAD = re.compile(rf"/({BUTTON_INTENT.pattern})")
# Conversation ids that belong to one channel. Telegram chat ids are guessable numbers,
# so Telegram conversations live under this prefix and REST refuses sender ids with it.
TELEGRAM_SENDER_PREFIX = "telegram:"
RESERVED_SENDER_PREFIXES = (TELEGRAM_SENDER_PREFIX,)
_LEADING_SLASHES = re.compile(r"^\s*/+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def domain_intents() -> FrozenSet[str]:
    """The intents domain.yml declares (read once)."""
    domain = yaml.safe_load(DOMAIN_FILE.read_text(encoding="utf-8")) or {}
    names = set()
    for entry in domain.get("intents") or []:
        names.update(entry if isinstance(entry, dict) else [entry])
    return frozenset(str(name) for name in names)


def is_button_payload(text: str) -> bool:
    match = BUTTON_PAYLOAD.fullmatch(text.strip())
    return match is not None and match.group(1) in domain_intents()


def clean_text(text: str) -> str:
    """User text as Rasa may see it: no control characters, no intent injection."""
    text = "".join(
        " " if ch in "\t\r\n" else ch
        for ch in text
        if ch in "\t\r\n" or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"} or ch == "\u200d"
    )
    text = _SPACES.sub(" ", text).strip()
    if is_button_payload(text):
        return text
    return _LEADING_SLASHES.sub("", text).strip()


def is_reserved_sender(sender: str) -> bool:
    """True for conversation ids only their own channel may use."""
    return sender.lower().startswith(RESERVED_SENDER_PREFIXES)


async def read_body(request: Any, max_bytes: int) -> Optional[bytes]:
    """The body of a streamed request, or None as soon as it is declared or grows larger
    than `max_bytes` (nothing beyond that is buffered)."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks, size = [], 0
    while True:
        chunk = await request.stream.read()
        if chunk is None:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
