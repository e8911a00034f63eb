"""The website's socket.io channel against the real servers (session `bot`): every
conversation belongs to the tab it was issued to, and one client cannot make the
server hold more than a bounded amount for it.

Clients speak the widget's protocol with python-socketio over long-polling (see
tests/test_hostile_input.py for why not websocket); the raw Engine.IO requests are
plain HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import List, Optional

import pytest
import sqlalchemy as sa

from revierlotse import notices
from revierlotse.channels.socketio import (MAX_METADATA_BYTES, MAX_SESSION_REQUESTS, SESSION_ID, SessionIds,
                                           _metadata)
from revierlotse.db import make_engine
from tests.conftest import new_sender

SALARY = "4.200 bis 5.200 €"


# --- unit: ids and metadata (no servers) -------------------------------------------

def test_session_ids_are_signed_random_and_recognised_only_with_the_same_secret():
    ids = SessionIds("geheim-1")
    issued = {ids.issue() for _ in range(200)}
    assert len(issued) == 200
    assert all(SESSION_ID.fullmatch(i) and ids.valid(i) for i in issued)
    one = next(iter(issued))
    nonce, mac = one.split(".")
    assert not SessionIds("geheim-2").valid(one)
    assert not ids.valid(f"{nonce}.{'A' * 22}")
    assert not ids.valid(f"{nonce[:-1]}{'B' if nonce[-1] != 'B' else 'C'}.{mac}")
    for other in (None, 42, "", uuid.uuid4().hex, "test-123456789", one + "x", one.upper()):
        assert not ids.valid(other)


def test_custom_data_is_kept_only_small_and_flat():
    assert _metadata({"language": "de"}) == {"language": "de"}
    assert _metadata('{"language": "de"}') == {"language": "de"}
    assert _metadata({"blob": "x" * MAX_METADATA_BYTES}) == {}
    assert _metadata({"nested": {"a": 1}}) == {}
    assert _metadata({f"k{i}": i for i in range(50)}) == {}
    assert _metadata("y" * 100_000) == {}
    assert _metadata([1, 2]) == {}


# --- against the running servers -----------------------------------------------------

class Widget:
    """One socket.io connection, as the widget makes it."""

    def __init__(self, bot) -> None:
        import socketio

        self.url = bot.url
        self.origin = bot.stack.settings.cors_origins[0]
        self.sio = socketio.AsyncClient(reconnection=False)
        self.replies: "asyncio.Queue[dict]" = asyncio.Queue()
        self.confirms: "asyncio.Queue[str]" = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.sio.on("session_confirm", self.confirms.put_nowait)
        self.sio.on("bot_uttered", self.replies.put_nowait)
        self.sio.on("disconnect", self.disconnected.set)
        self.session_id = ""

    async def connect(self) -> "Widget":
        await self.sio.connect(self.url, headers={"Origin": self.origin}, transports=["polling"], wait_timeout=30)
        return self

    async def request_session(self, session_id: Optional[str] = None) -> str:
        await self.sio.emit("session_request", {"session_id": session_id})
        self.session_id = await asyncio.wait_for(self.confirms.get(), 30)
        return self.session_id

    async def send(self, message, **extra) -> None:
        await self.sio.emit("user_uttered", {"message": message, "session_id": self.session_id, **extra})

    async def texts_until(self, needle: str, timeout: float = 60) -> List[str]:
        texts: List[str] = []
        while not any(needle in t for t in texts):
            texts.append((await asyncio.wait_for(self.replies.get(), timeout)).get("text", ""))
        return texts

    async def quiet_for(self, seconds: float) -> List[dict]:
        await asyncio.sleep(seconds)
        heard = []
        while not self.replies.empty():
            heard.append(self.replies.get_nowait())
        return heard

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def widget(bot, session_id: Optional[str] = None) -> Widget:
    client = await Widget(bot).connect()
    await client.request_session(session_id)
    return client


def stored_user_events(kb_url: str, sender: str, expected: int = 1) -> List[dict]:
    """The user events stored for `sender`, waiting (up to 15 s) until there are `expected`:
    socket.io replies go out before Rasa saves the turn."""
    engine = make_engine(kb_url)
    try:
        for _ in range(75):
            with engine.connect() as connection:
                rows = connection.execute(sa.text(
                    "SELECT data FROM events WHERE sender_id = :sender AND type_name = 'user' ORDER BY id"),
                    {"sender": sender}).scalars().all()
            if len(rows) >= expected:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    return [json.loads(row) for row in rows]


@pytest.mark.e2e
def test_session_ids_are_issued_by_the_server_and_a_tab_resumes_its_own(bot, kb_url):
    async def scenario():
        first = await widget(bot)
        issued = first.session_id
        await first.send("Was verdient ein Einsteiger?")
        assert any(SALARY in t for t in await first.texts_until(SALARY))
        await first.close()
        # A reload: a new socket asks for the id the tab stored and gets it back.
        again = await widget(bot, issued)
        resumed = again.session_id
        await again.close()
        return issued, resumed

    issued, resumed = asyncio.run(scenario())
    assert SESSION_ID.fullmatch(issued), issued
    assert resumed == issued
    assert [e["text"] for e in stored_user_events(kb_url, issued)] == ["Was verdient ein Einsteiger?"]


@pytest.mark.e2e
def test_unknown_guessed_or_forged_ids_get_a_fresh_session(bot):
    rest_sender = f"{uuid.uuid4().hex}"  # a REST conversation with a plausible-looking id
    assert SALARY in bot.ask_text("Was verdient ein Einsteiger?", rest_sender)

    async def scenario():
        genuine = await widget(bot)
        nonce = genuine.session_id.split(".")[0]
        await genuine.close()
        asked = [None, rest_sender, "someone-else-123", uuid.uuid4().hex, f"{nonce}.{'A' * 22}",
                 genuine.session_id + "x", {"nested": 1}, 42]
        given = []
        for requested in asked:
            client = await Widget(bot).connect()
            given.append((requested, await client.request_session(requested)))
            await client.close()
        return genuine.session_id, given

    genuine, given = asyncio.run(scenario())
    ids = [confirmed for _, confirmed in given]
    assert len(set(ids) | {genuine}) == len(ids) + 1, "every request got a new id"
    for requested, confirmed in given:
        assert confirmed != requested and SESSION_ID.fullmatch(confirmed)


@pytest.mark.e2e
def test_a_guessed_rest_sender_id_does_not_open_that_conversation(bot, kb_url):
    rest_sender = new_sender()
    assert SALARY in bot.ask_text("Ich bin Berufseinsteiger. Was verdient man?", rest_sender)

    async def scenario():
        client = await widget(bot, rest_sender)
        await client.send("Was verdient man?")
        texts = [await asyncio.wait_for(client.replies.get(), 60)]
        await client.close()
        return client.session_id, texts

    session_id, _ = asyncio.run(scenario())
    assert session_id != rest_sender
    # The message went into the fresh conversation, not into the REST one.
    assert [e["text"] for e in stored_user_events(kb_url, rest_sender)] == ["Ich bin Berufseinsteiger. Was verdient man?"]
    assert [e["text"] for e in stored_user_events(kb_url, session_id)] == ["Was verdient man?"]


@pytest.mark.e2e
def test_a_socket_holds_one_session_at_a_time_and_a_bounded_number_of_requests(bot):
    async def scenario():
        hopper = await widget(bot)
        first = hopper.session_id
        for _ in range(MAX_SESSION_REQUESTS - 1):
            await hopper.request_session(None)
        # The socket left the session it joined first: a message there (from the tab that owns it)
        # is not heard by it any more.
        owner = await widget(bot, first)
        await owner.send("Was verdient ein Einsteiger?")
        owner_heard = await owner.texts_until(SALARY)
        hopper_heard = await hopper.quiet_for(1.0)
        # One request too many closes the socket, without a new session.
        await hopper.sio.emit("session_request", {"session_id": None})
        await asyncio.wait_for(hopper.disconnected.wait(), 30)
        extra_confirm = not hopper.confirms.empty()
        await owner.close()
        await hopper.close()
        return owner_heard, hopper_heard, extra_confirm

    owner_heard, hopper_heard, extra_confirm = asyncio.run(scenario())
    assert any(SALARY in t for t in owner_heard)
    assert not any(SALARY in m.get("text", "") for m in hopper_heard), hopper_heard
    assert not extra_confirm


@pytest.mark.e2e
def test_a_new_session_does_not_reset_the_sockets_rate_limit(bot):
    limit = bot.stack.settings.rate_limit_per_minute

    async def scenario():
        client = await widget(bot)
        # Empty messages are dropped by the channel without a turn, but they count.
        # (Spaced out: Engine.IO refuses a polling request with too many packets.)
        for _ in range(limit):
            await client.send(" ")
            await asyncio.sleep(0.05)
        await client.request_session(None)
        await client.send("Was verdient ein Einsteiger?")
        reply = await asyncio.wait_for(client.replies.get(), 60)
        await client.close()
        fresh = await widget(bot)
        await fresh.send("Was verdient ein Einsteiger?")
        other = await fresh.texts_until(SALARY)
        await fresh.close()
        return reply, other

    reply, other = asyncio.run(scenario())
    assert reply.get("text") == notices.RATE_LIMITED
    assert any(SALARY in t for t in other), "another socket is not limited"


@pytest.mark.e2e
def test_large_custom_data_never_reaches_the_tracker(bot, kb_url):
    async def scenario():
        client = await widget(bot)
        await client.send("Was verdient ein Einsteiger?", customData={"language": "de", "blob": "x" * 8000})
        await client.texts_until(SALARY)
        await client.send("Und was muss ich können?", customData={"language": "de"})
        await asyncio.wait_for(client.replies.get(), 60)
        await client.close()
        return client.session_id

    session_id = asyncio.run(scenario())
    events = stored_user_events(kb_url, session_id, expected=2)
    assert [e["text"] for e in events] == ["Was verdient ein Einsteiger?", "Und was muss ich können?"]
    raw = json.dumps(events)
    assert "x" * 100 not in raw
    # Rasa adds assistant_id and model_id; of ours only the small object is kept.
    ours = [{k: v for k, v in e["metadata"].items() if k not in {"assistant_id", "model_id"}} for e in events]
    assert ours == [{}, {"language": "de"}]


@pytest.mark.e2e
def test_unknown_button_payload_reaches_rasa_as_plain_text(bot, kb_url):
    sender = new_sender()
    assert bot.ask(" /ask_xyz", sender)
    events = stored_user_events(kb_url, sender)
    assert [e["text"] for e in events] == ["ask_xyz"]
    assert events[0]["parse_data"]["intent"]["name"] != "ask_xyz"


def engineio(bot, query: str, body: Optional[bytes] = None, origin: Optional[str] = "default"):
    """One raw Engine.IO request: (status, body)."""
    headers = {}
    if origin:
        headers["Origin"] = bot.stack.settings.cors_origins[0] if origin == "default" else origin
    if body is not None:
        headers["Content-Type"] = "text/plain;charset=UTF-8"
    req = urllib.request.Request(f"{bot.url}/socket.io/?EIO=4&transport=polling{query}", data=body,
                                 headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def handshake(bot) -> str:
    status, body = engineio(bot, "")
    assert status == 200, body
    sid = json.loads(body[body.index(b"{"):])["sid"]
    assert engineio(bot, f"&sid={sid}", b"40")[0] == 200  # socket.io CONNECT
    status, body = engineio(bot, f"&sid={sid}")  # the CONNECT answer
    assert status == 200 and body.startswith(b"40"), body
    return sid


@pytest.mark.e2e
def test_jsonp_polling_is_refused(bot):
    # As a <script> tag on any site would ask: no Origin header at all.
    for query in ("&j=0", "&j=abc"):
        status, body = engineio(bot, query, origin=None)
        assert status == 400 and b"sid" not in body and b"___eio" not in body, body
    assert engineio(bot, "")[0] == 200


@pytest.mark.e2e
def test_binary_packets_close_the_socket(bot):
    sid = handshake(bot)
    # A BINARY_EVENT that announces one attachment and never sends it.
    status, _ = engineio(bot, f"&sid={sid}", b'451-["user_uttered",{"_placeholder":true,"num":0}]')
    assert status == 200
    status, body = engineio(bot, f"&sid={sid}")
    # Closed: the next poll gets a CLOSE packet or the session is already gone.
    assert status == 400 or body.startswith(b"1"), (status, body)
    # An attachment on its own (a binary Engine.IO message) closes it as well.
    sid = handshake(bot)
    engineio(bot, f"&sid={sid}", b"bAQID")
    status, body = engineio(bot, f"&sid={sid}")
    assert status == 400 or body.startswith(b"1"), (status, body)


@pytest.mark.e2e
def test_engineio_buffer_is_bounded(bot):
    limit = 4 * bot.stack.settings.max_request_bytes
    sid = handshake(bot)
    packet = '42["user_uttered",{"message":"' + "x" * limit + '","session_id":"x"}]'
    status, _ = engineio(bot, f"&sid={sid}", packet.encode())
    assert status in (400, 413), status
    # A message of the largest accepted length still fits.
    async def scenario():
        client = await widget(bot)
        await client.send("ü" * bot.stack.settings.max_message_chars)
        reply = await asyncio.wait_for(client.replies.get(), 60)
        await client.close()
        return reply

    assert asyncio.run(scenario()).get("text")
