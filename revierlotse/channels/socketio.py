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
  `guard.clean_text`, and a socket may only speak for the session it was confirmed.

Bot text is rendered by the widget as markdown with link URLs unfiltered, so the
output side turns links with a scheme other than http(s)/mailto/tel into plain text.

credentials.yml:

    revierlotse.channels.socketio.SocketIOChannel:
      session_persistence: true
      metadata_key: customData
      cors_allowed_origins: ${CORS_ORIGINS}
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Union

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from socketio import AsyncServer

from revierlotse.channels.guard import clean_text

logger = logging.getLogger(__name__)

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
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


def _metadata(value: Any) -> Dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


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
        self.cors_origins = cors_origins or []
        # socket id -> the conversation (session id) that socket was confirmed for.
        self._sessions: Dict[Text, Text] = {}

    def get_output_channel(self) -> Optional[SocketIOOutput]:
        return SafeSocketIOOutput(self.sio, self.bot_message_evt) if self.sio is not None else None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = AsyncServer(async_mode="sanic", cors_allowed_origins=_origins(self.cors_origins))
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
            logger.debug("socket %s disconnected", sid)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: Text, data: Optional[Dict] = None) -> None:
            requested = (data or {}).get("session_id") if isinstance(data, dict) else None
            session_id = requested if isinstance(requested, str) and SESSION_ID.fullmatch(requested) else None
            session_id = session_id or uuid.uuid4().hex
            if self.session_persistence:
                entered = sio.enter_room(sid, session_id, namespace=self.namespace)
                if inspect.isawaitable(entered):
                    await entered
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
            text = clean_text(str(data.get("message") or ""))
            if not text:
                return
            await on_new_message(UserMessage(
                text,
                SafeSocketIOOutput(sio, self.bot_message_evt),
                sender_id,
                input_channel=self.name(),
                metadata=_metadata(data.get(self.metadata_key)),
            ))

        return socketio_webhook
