"""REST channel that refuses what the stock one lets through (same name and URL).

    POST /webhooks/rest/webhook   {"sender": "anna-42", "message": "Was verdient man?"}
    -> 200 [{"recipient_id": "anna-42", "text": "..."}, ...]

Differences to Rasa's `rest` channel (see docs/rasa-3.6-notes.md, "Channels"):
- the body is read in chunks and refused with 413 beyond MAX_REQUEST_BYTES, before
  it is parsed; a message longer than MAX_MESSAGE_CHARS gets 413 as well;
- the body must be a UTF-8 JSON object sent as application/json, `sender` a sane id
  (no fallback to the shared conversation "default") and `message` a string, else 400;
- the text goes through `guard.clean_text` (no intent injection, no control characters);
- `input_channel` and `metadata` from the body are ignored (no spoofing, no tracker bloat);
- every error is a German JSON `{"error": "..."}`; a failure inside Rasa gives the
  apology with 200, never a 5xx or a stack trace. No streaming mode.
Empty text and the rate limit are handled for all channels in `revierlotse.turns`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Awaitable, Callable, Dict, Optional, Text, Tuple

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from revierlotse import notices
from revierlotse.channels.guard import clean_text, is_reserved_sender, read_body
from revierlotse.replies import apology_text
from revierlotse.settings import get_settings

logger = logging.getLogger(__name__)

SENDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}")
JSON_TYPES = ("application/json", "application/vnd.api+json")


class RequestRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_request(body: bytes, content_type: str, max_chars: int) -> Tuple[str, str]:
    """(sender, cleaned text) from a raw request, or `RequestRejected`."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise RequestRejected(400, notices.NOT_A_JSON_OBJECT)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestRejected(400, notices.NOT_A_JSON_OBJECT) from None
    if not isinstance(payload, dict):
        raise RequestRejected(400, notices.NOT_A_JSON_OBJECT)
    sender = payload.get("sender")
    if not isinstance(sender, str) or not SENDER_ID.fullmatch(sender) or is_reserved_sender(sender):
        raise RequestRejected(400, notices.BAD_SENDER)
    text = payload.get("message")
    if not isinstance(text, str):
        raise RequestRejected(400, notices.BAD_MESSAGE)
    if len(text) > max_chars:
        raise RequestRejected(413, notices.MESSAGE_TOO_LONG.format(max_chars=max_chars))
    return sender, clean_text(text)


def error(status: int, message: str) -> HTTPResponse:
    return response.json({"error": message}, status=status)


class RestInput(InputChannel):
    """The `rest` channel, hardened."""

    @classmethod
    def name(cls) -> Text:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "RestInput":
        return cls()

    def __init__(self) -> None:
        settings = get_settings()
        self.max_request_bytes = settings.max_request_bytes
        self.max_message_chars = settings.max_message_chars
        self.knowledge_dir = settings.knowledge_dir

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("revierlotse_rest", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                body = await read_body(request, self.max_request_bytes)
                if body is None:
                    request.stream.keep_alive = False  # do not read the rest of a huge body
                    return error(413, notices.REQUEST_TOO_LARGE.format(max_bytes=self.max_request_bytes))
                sender, text = parse_request(body, request.headers.get("content-type", ""), self.max_message_chars)
            except RequestRejected as rejected:
                return error(rejected.status, rejected.message)
            except Exception:  # noqa: BLE001 - e.g. a broken chunked encoding
                logger.warning("rest: unreadable request", exc_info=logger.isEnabledFor(logging.DEBUG))
                return error(400, notices.NOT_A_JSON_OBJECT)

            collector = CollectingOutputChannel()
            try:
                await on_new_message(UserMessage(text, collector, sender, input_channel=self.name()))
            except Exception:  # noqa: BLE001 - turns.TurnGate already answers failures; last line
                logger.error("rest: message handling failed", exc_info=logger.isEnabledFor(logging.DEBUG))
                return response.json([{"recipient_id": sender, "text": apology_text(self.knowledge_dir)}])
            return response.json(collector.messages)

        return webhook
