"""Socket.io channel for the website widget (rasa-webchat).

Rasa 3.6.21's `SocketIOInput` has three problems this subclass fixes:

* it accepts connections from every origin (`cors_allowed_origins=[]` turns the
  check off); here only the origins in `cors_allowed_origins` (from `CORS_ORIGINS`)
  may connect, and `*` is refused at start-up;
* it calls `sio.enter_room` without `await`, so with python-socketio >= 5.10 and
  `session_persistence: true` replies are silently dropped; here it is awaited when
  it is a coroutine (5.10+) and called plainly when not (the pinned 5.9.0);
* it passes message text to Rasa as is (`/intent{"slot": ...}` injection) and trusts
  whatever `session_id` a message names; here the text goes through
  `guard.clean_text`, and a socket may only speak for the session it was confirmed;
* it confirms any session id a socket asks for, so anyone who knows or guesses an id
  hears that conversation; here ids are issued by the server and signed with
  SESSION_SECRET (`SessionIds`): an unknown or forged id gets a fresh one, so only the
  browser that was given an id can resume it;
* one socket may ask for any number of sessions (each a room it stays in, each a fresh
  rate-limit count); here a socket is in one session at a time, may ask at most
  `MAX_SESSION_REQUESTS` times, and its messages count against a limit of its own;
* it stores whatever `customData` a message carries in the tracker; here only a small
  flat object is kept (`MAX_METADATA_BYTES`), anything else is dropped;
* python-socketio 5.9 keeps a binary packet that announces attachments until they
  arrive (forever, if they never do), Engine.IO answers JSONP polling (a `<script>`
  on any site can then read the socket, with no Origin header to check) and buffers
  messages up to 1 MB; here binary packets close the socket, JSONP gets 400 and a
  message may be at most `4 × MAX_REQUEST_BYTES`.

Bot text is rendered by the widget as markdown with link URLs unfiltered, so the
output side turns links with a scheme other than http(s)/mailto/tel into plain text.

credentials.yml:

    revierlotse.channels.socketio.SocketIOChannel:
      session_persistence: true
      metadata_key: customData
      cors_allowed_origins: ${CORS_ORIGINS}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import logging
import re
import secrets
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Union
from urllib.parse import parse_qs

import engineio
from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from socketio import AsyncServer

from revierlotse import notices
from revierlotse.channels.guard import clean_text
from revierlotse.ratelimit import RateLimiter
from revierlotse.settings import get_settings

logger = logging.getLogger(__name__)

# A session id: 16 random bytes and 16 bytes of their HMAC-SHA256, both base64url.
SESSION_ID = re.compile(r"([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})")
# How often one socket may ask for a session (the widget asks once per connection;
# "Neues Gespräch" opens a new connection). Beyond that the socket is closed.
MAX_SESSION_REQUESTS = 4
# customData kept per message: a flat JSON object of at most this size, few short keys.
MAX_METADATA_BYTES = 512
MAX_METADATA_KEYS = 8
# socket.io packet types that announce binary attachments (BINARY_EVENT, BINARY_ACK).
_BINARY_PACKET_TYPES = ("5", "6")
# A markdown link or image `[text](target)`: the part react-markdown would put in href/src.
_MARKDOWN_LINK = re.compile(
    r"(!?)\[([^\]]*)\]\(\s*<?((?:[^()\s<>]|\([^()\s]*\))*)>?"  # [label](<target> with one level of (...)
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"  # optional "title"
)
# A markdown autolink `<scheme:...>` or a reference definition `[id]: scheme:...`.
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]*:[^>\s]*)>")
_REFERENCE = re.compile(r"^(\s{0,3}\[[^\]]+\]:\s*)(\S+)", re.MULTILINE)
_SAFE_SCHEME = re.compile(r"(https?:|mailto:|tel:|#|/(?!/))", re.IGNORECASE)


def _is_safe_url(url: str) -> bool:
    # Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
    compact = re.sub(r"[\x00-\x20]", "", url)
    return _SAFE_SCHEME.match(compact) is not None


def defuse_links(text: str) -> str:
    """Markdown text whose links can only go to http(s), mailto or tel targets.

    A link to anything else (`javascript:`, `data:`, ...) keeps its label as plain
    text; its target is dropped.
    """

    def link(match: "re.Match[str]") -> str:
        return match.group(0) if _is_safe_url(match.group(3)) else match.group(2)

    text = _MARKDOWN_LINK.sub(link, text)
    text = _AUTOLINK.sub(lambda m: m.group(0) if _is_safe_url(m.group(1)) else m.group(1), text)
    return _REFERENCE.sub(lambda m: m.group(0) if _is_safe_url(m.group(2)) else m.group(1) + "#", text)


class SafeSocketIOOutput(SocketIOOutput):
    """Rasa's socket.io output with link targets defused in every text the widget renders."""

    async def _send_message(self, socket_id: Text, response: Any) -> None:
        if isinstance(response, dict) and isinstance(response.get("text"), str):
            response = {**response, "text": defuse_links(response["text"])}
        await super()._send_message(socket_id, response)


def _origins(value: Union[str, List[str], None]) -> List[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    origins = [item.strip().rstrip("/") for item in items if item and item.strip()]
    if not origins:
        raise ValueError("socketio channel: cors_allowed_origins is empty; set CORS_ORIGINS")
    if "*" in origins:
        raise ValueError("socketio channel: CORS_ORIGINS must list origins, not '*'")
    return origins


class SessionIds:
    """Session ids the server issues and recognises: `<nonce>.<HMAC of the nonce>`.

    Without the secret nobody can make an id the server accepts, so a conversation can
    be resumed only with the id it was given (the tab that holds it).
    """

    def __init__(self, secret: Union[str, bytes]) -> None:
        if not secret:
            raise ValueError("SessionIds needs a secret")
        self._key = secret.encode("utf-8") if isinstance(secret, str) else secret

    def _mac(self, nonce: str) -> str:
        digest = hmac.new(self._key, b"revierlotse-widget-session:" + nonce.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._mac(nonce)}"

    def valid(self, value: Any) -> bool:
        match = SESSION_ID.fullmatch(value) if isinstance(value, str) else None
        return match is not None and hmac.compare_digest(match.group(2), self._mac(match.group(1)))


def _session_secret(configured: str) -> str:
    if configured:
        return configured
    logger.warning("SESSION_SECRET is empty: using a random one for this process; widget conversations "
                   "cannot be resumed after a restart or on another replica (set SESSION_SECRET)")
    return secrets.token_urlsafe(32)


def _metadata(value: Any) -> Dict[str, Any]:
    """`customData` as it may reach the tracker: a small flat object, or nothing."""
    if isinstance(value, str):
        if len(value) > MAX_METADATA_BYTES:
            return {}
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        return {}
    flat = all(isinstance(k, str) and len(k) <= 32 and (v is None or isinstance(v, (str, int, float, bool)))
               for k, v in value.items())
    if not flat or len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > MAX_METADATA_BYTES:
        return {}
    return value


async def _maybe_await(result: Any) -> None:
    # python-socketio 5.9 has plain enter_room/leave_room, 5.10+ coroutines.
    if inspect.isawaitable(result):
        await result


class _EngineServer(engineio.AsyncServer):
    """Engine.IO without JSONP polling, and closing a socket without waiting for it.

    Engine.IO's own `disconnect` waits until the client has polled the CLOSE packet; a
    request that closes its socket (an oversized or binary message) then never finishes
    and keeps its connection and socket state forever.
    """

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        request = args[0] if args else None
        if "j" in parse_qs(getattr(request, "query_string", "") or ""):
            return response.text("JSONP polling is off", status=400)
        return await super().handle_request(*args, **kwargs)

    async def disconnect(self, sid: Optional[Text] = None) -> None:
        if sid is None:
            return await super().disconnect()
        socket = self.sockets.get(sid)
        if socket is not None:
            await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
            self.sockets.pop(sid, None)


class _SocketServer(AsyncServer):
    """socket.io without binary packets (closed at once, never buffered) and without JSONP."""

    def _engineio_server_class(self) -> Any:
        return _EngineServer

    async def _handle_eio_message(self, eio_sid: Text, data: Any) -> None:
        if not isinstance(data, str) or data[:1] in _BINARY_PACKET_TYPES:
            logger.warning("socket.io binary packet refused; connection closed")
            await self.eio.disconnect(eio_sid)
            return
        await super()._handle_eio_message(eio_sid, data)


class SocketIOChannel(SocketIOInput):
    """The widget's socket.io channel: origin-restricted, awaited rooms, cleaned text."""

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        channel = super().from_credentials(credentials)
        channel.cors_origins = _origins(credentials.get("cors_allowed_origins"))
        return channel

    def __init__(self, *args: Any, cors_origins: Optional[List[str]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.cors_origins = cors_origins or []
        self.session_ids = SessionIds(_session_secret(settings.session_secret))
        self.max_buffer_bytes = 4 * settings.max_request_bytes
        # Per socket, whatever session it speaks for (the turn gate counts per session).
        self.socket_limiter = RateLimiter(settings.rate_limit_per_minute)
        # socket id -> the conversation (session id) that socket was confirmed for.
        self._sessions: Dict[Text, Text] = {}
        # socket id -> how often it asked for a session.
        self._session_requests: Dict[Text, int] = {}

    def get_output_channel(self) -> Optional[SocketIOOutput]:
        return SafeSocketIOOutput(self.sio, self.bot_message_evt) if self.sio is not None else None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = _SocketServer(async_mode="sanic", cors_allowed_origins=_origins(self.cors_origins),
                            max_http_buffer_size=self.max_buffer_bytes)
        self.sio = sio
        socketio_webhook = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)

        @socketio_webhook.route("/", methods=["GET"])
        async def health(_: Any) -> Any:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: Text, environ: Dict, auth: Optional[Dict] = None) -> bool:
            if self.jwt_key:
                from rasa.core.channels.channel import decode_bearer_token

                token = (auth or {}).get("token")
                if not token or not decode_bearer_token(token, self.jwt_key, self.jwt_algorithm):
                    return False
            logger.debug("socket %s connected", sid)
            return True

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: Text) -> None:
            self._sessions.pop(sid, None)
            self._session_requests.pop(sid, None)
            logger.debug("socket %s disconnected", sid)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Optional[Dict] = None) -> None:
            requests = self._session_requests.get(sid, 0) + 1
            if requests > MAX_SESSION_REQUESTS:
                logger.warning("socket asked for more than %d sessions; connection closed", MAX_SESSION_REQUESTS)
                await sio.disconnect(sid, namespace=self.namespace)
                return
            self._session_requests[sid] = requests
            requested = data.get("session_id") if isinstance(data, dict) else None
            # Only an id this server issued is resumed; anything else starts a fresh session.
            session_id = requested if self.session_ids.valid(requested) else self.session_ids.issue()
            previous = self._sessions.get(sid)
            if self.session_persistence:
                if previous is not None and previous != session_id:
                    await _maybe_await(sio.leave_room(sid, previous, namespace=self.namespace))
                await _maybe_await(sio.enter_room(sid, session_id, namespace=self.namespace))
            self._sessions[sid] = session_id
            await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: Text, data: Any) -> None:
            if not isinstance(data, dict):
                return
            if self.session_persistence:
                sender_id = self._sessions.get(sid)
                if sender_id is None or data.get("session_id") != sender_id:
                    logger.warning("socket %s sent a message for a session it was not confirmed for; ignored", sid)
                    return
            else:
                sender_id = sid
            output = SafeSocketIOOutput(sio, self.bot_message_evt)
            if not self.socket_limiter.allow(sid):
                await self._refuse_rate_limited(output, sender_id)
                return
            text = clean_text(str(data.get("message") or ""))
            if not text:
                return
            await on_new_message(UserMessage(
                text,
                output,
                sender_id,
                input_channel=self.name(),
                metadata=_metadata(data.get(self.metadata_key)),
            ))

        return socketio_webhook

    async def _refuse_rate_limited(self, output: SocketIOOutput, sender_id: Text) -> None:
        """The socket's own limit: the same German notice and turn line as the turn gate's."""
        from revierlotse.turns import TurnRecord, sender_tag

        record = TurnRecord(channel=self.name(), sender=sender_tag(sender_id), outcome="rate_limited")
        await output.send_text_message(sender_id, notices.RATE_LIMITED)
        logging.getLogger("revierlotse.turns").info(record.line())
