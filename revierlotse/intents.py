"""The naming convention that links intents, topics and button payloads.

A topic `salary` in the knowledge base is asked by the intent `ask_salary`, and a
button for it sends the payload `/ask_salary`. Actions, channels and the report all
use these helpers rather than spelling the convention out again.
"""

from __future__ import annotations

import re
from typing import Optional

TOPIC_INTENT_PREFIX = "ask_"
# Intents our own buttons send as bare payloads (topic menu, greeting, capabilities,
# rating an answer, the privacy notice and erasure: widget controls, Telegram commands).
BUTTON_INTENT = re.compile(
    rf"{TOPIC_INTENT_PREFIX}[a-z]+|greet|ask_capabilities"
    r"|feedback_helpful|feedback_unhelpful|privacy_notice|delete_data"
)


def topic_of_intent(intent: Optional[str]) -> str:
    """'ask_salary' -> 'salary'; '' for intents that are not topic questions."""
    return intent[len(TOPIC_INTENT_PREFIX):] if intent and intent.startswith(TOPIC_INTENT_PREFIX) else ""


def payload_for_topic(topic: str) -> str:
    """The button payload that asks about `topic`."""
    return f"/{TOPIC_INTENT_PREFIX}{topic}"
