"""Telegram channel: Bot API webhook in, Bot API calls out.

Replaces Rasa 3.6.21's stock `telegram` channel, which fails on every update, aborts
start-up when the Bot API is unreachable and accepts forged updates. Same name, so the
webhook stays at `/webhooks/telegram/webhook`; credentials.yml points here.

What one webhook request does:

- channel off (no TELEGRAM_TOKEN): 503, nothing else.
- `X-Telegram-Bot-Api-Secret-Token` missing or not TELEGRAM_SECRET_TOKEN: 403
  (constant-time comparison), before a byte of the body is read.
- a body declared (Content-Length) or growing (chunked) beyond MAX_REQUEST_BYTES: 413,
  without buffering it; the connection is closed instead of draining the rest.
- body not a JSON object, no integer update_id, or a message without a chat id: 400.
- an update_id already handled (Telegram re-sends an update when our 200 came late):
  200, no second reply (`SeenUpdates`: the last 10,000 ids in the process, and with
  REDIS_URL a SET NX key per id shared by all replicas, kept 25 hours).
- a text message: cleaned (`guard.clean_text`) and handed to Rasa; the bot commands
  (`COMMANDS`) become our own payloads: `/start` the greeting with the topic menu,
  `/hilfe` (and `/help`) what the bot can do, `/datenschutz` the privacy notice,
  `/loeschen` the erasure of the conversation.
- a sticker, photo, voice note, ... : a short German "only text" hint.
- a button press (callback_query): answered (the client stops spinning), then its
  payload goes to Rasa as if typed, through the same guard.
- anything else (edited messages, channel posts, my_chat_member, ...): 200, ignored.

Each chat is its own conversation: the sender id is the chat id. Replies are plain text
(no parse_mode, so Markdown/HTML characters in answers are shown as they are, never
interpreted), split below Telegram's 4096-character limit; buttons become an inline
keyboard. The server never calls the Bot API at start: `make telegram-webhook`
(revierlotse/telegram_webhook.py) registers the webhook.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text

from aiogram import Bot
from aiogram.bot.api import TelegramAPIServer
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.exceptions import ValidationError
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from revierlotse import notices
from revierlotse.channels.guard import TELEGRAM_SENDER_PREFIX, clean_text, read_body
from revierlotse.settings import get_settings

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram's limit is 4096 UTF-16 code units per message; stay clearly below it.
MESSAGE_LIMIT = 4000
CALLBACK_DATA_LIMIT = 64  # bytes, Bot API limit for inline button data
BUTTONS_PER_ROW = 2
BOT_API_TIMEOUT_SECONDS = 10.0
# Update types we act on; `make telegram-webhook` subscribes to exactly these.
HANDLED_UPDATES = ("message", "callback_query")

# Bot commands and the intents they stand for (button payloads the guard lets through).
COMMANDS = {
    "start": "/greet",
    "help": "/ask_capabilities",
    "hilfe": "/ask_capabilities",
    "datenschutz": "/privacy_notice",
    "loeschen": "/delete_data",
    "löschen": "/delete_data",  # typed by hand; Telegram's menu commands are ASCII only
}
# The command menu `make telegram-webhook` registers (setMyCommands), in menu order.
COMMAND_MENU = (
    ("start", "Begrüßung und Themen"),
    ("hilfe", "Was ich beantworten kann"),
    ("datenschutz", "Was ich speichere und wie lange"),
    ("loeschen", "Unser Gespräch sofort löschen"),
)
_COMMAND = re.compile(r"^/(\w+)(?:@\w+)?(?:\s.*)?$", re.DOTALL)

# Message contents a person sends that we cannot read; they get notices.ONLY_TEXT.
# (Service messages such as new_chat_members are ignored silently.)
NON_TEXT_CONTENT = (
    "sticker", "photo", "voice", "audio", "video", "video_note", "animation", "document",
    "location", "venue", "contact", "poll", "dice",
)
EMPTY_TEXT_WITH_BUTTONS = "Wähl ein Thema:"

# Re-delivered updates: how many ids one process remembers, and how long Redis keeps
# one (Telegram keeps an undelivered update for at most 24 hours).
SEEN_UPDATES_IN_PROCESS = 10_000
SEEN_UPDATE_SECONDS_IN_REDIS = 25 * 3600
REDIS_TIMEOUT_SECONDS = 2.0


def make_bot(token: str, api_url: str = DEFAULT_API_URL) -> Bot:
    """The aiogram bot for `token`, talking to the Bot API at `api_url`.

    Raises aiogram's ValidationError for a malformed token. Makes no network call.
    """
    server = TelegramAPIServer.from_base(api_url or DEFAULT_API_URL)
    return Bot(token, server=server, timeout=BOT_API_TIMEOUT_SECONDS)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MESSAGE_LIMIT) -> List[str]:
    """`text` in pieces of at most `limit` UTF-16 units, cut at paragraph, line,
    sentence or word boundaries where possible."""
    text = text.strip()
    pieces: List[str] = []
    while _utf16_length(text) > limit:
        end, used = 0, 0
        for ch in text:  # longest prefix that fits
            used += 2 if ord(ch) > 0xFFFF else 1
            if used > limit:
                break
            end += 1
        window = text[:end]
        cut = end
        for separator in ("\n\n", "\n", ". ", " "):
            at = window.rfind(separator)
            if at > end // 2:
                cut = at + len(separator)
                break
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def inline_keyboard(buttons: List[Dict[Text, Any]]) -> Optional[InlineKeyboardMarkup]:
    """Rasa buttons as an inline keyboard; a button press sends its payload back."""
    markup = InlineKeyboardMarkup(row_width=BUTTONS_PER_ROW)
    keys = []
    for button in buttons:
        title = str(button.get("title") or "").strip()
        if button.get("url"):
            keys.append(InlineKeyboardButton(title or button["url"], url=button["url"]))
            continue
        payload = str(button.get("payload") or title)
        if not title or not payload or len(payload.encode("utf-8")) > CALLBACK_DATA_LIMIT:
            logger.warning("Telegram: button %r left out (no title, or payload longer than %d bytes)",
                           title, CALLBACK_DATA_LIMIT)
            continue
        keys.append(InlineKeyboardButton(title, callback_data=payload))
    if not keys:
        return None
    markup.add(*keys)
    return markup


def sender_of_chat(chat_id: int) -> str:
    """The conversation id of a Telegram chat (namespaced: REST cannot write into it)."""
    return f"{TELEGRAM_SENDER_PREFIX}{chat_id}"


def chat_of_sender(sender_id: str) -> str:
    """The Telegram chat id behind a conversation id (plain chat ids pass through)."""
    return sender_id[len(TELEGRAM_SENDER_PREFIX):] if sender_id.startswith(TELEGRAM_SENDER_PREFIX) else sender_id


class TelegramOutput(OutputChannel):
    """Sends Rasa's replies through the Bot API as plain text."""

    @classmethod
    def name(cls) -> Text:
        return "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        chat_id = chat_of_sender(recipient_id)
        for piece in split_text(text):
            await self.bot.send_message(chat_id, piece)

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        chat_id = chat_of_sender(recipient_id)
        pieces = split_text(text or "") or [EMPTY_TEXT_WITH_BUTTONS]
        for piece in pieces[:-1]:
            await self.bot.send_message(chat_id, piece)
        await self.bot.send_message(chat_id, pieces[-1], reply_markup=inline_keyboard(buttons))

    async def close(self) -> None:
        session = self.bot._session  # aiogram creates it lazily; close only what exists
        if session is not None and not session.closed:
            await session.close()


class MalformedUpdate(ValueError):
    """The request body is JSON, but not a Telegram update we can read."""


@dataclass(frozen=True)
class Incoming:
    """What an update asks us to do: reply to `chat_id` with Rasa's answer to `text`,
    or (`only_text_hint`) tell the user we read only text."""

    chat_id: int
    text: str = ""
    callback_query_id: Optional[str] = None
    only_text_hint: bool = False


def _chat_id(container: Any) -> int:
    chat = container.get("chat") if isinstance(container, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        raise MalformedUpdate("message without chat id")
    return chat_id


def user_text(text: str) -> str:
    """What a typed Telegram text becomes for Rasa: commands mapped, then cleaned."""
    command = _COMMAND.match(text.strip())
    if command and command.group(1).lower() in COMMANDS:
        return COMMANDS[command.group(1).lower()]
    return clean_text(text)


def parse_update(update: Dict[str, Any]) -> Optional[Incoming]:
    """The work an update asks for, or None when we ignore it."""
    if "message" in update:
        message = update["message"]
        chat_id = _chat_id(message)
        text = message.get("text")
        if isinstance(text, str):
            cleaned = user_text(text)
            return Incoming(chat_id, cleaned) if cleaned else None
        if any(key in message for key in NON_TEXT_CONTENT):
            return Incoming(chat_id, only_text_hint=True)
        return None
    if "callback_query" in update:
        query = update["callback_query"]
        if not isinstance(query, dict) or not isinstance(query.get("id"), str):
            raise MalformedUpdate("callback_query without id")
        if isinstance(query.get("message"), dict):
            chat_id = _chat_id(query["message"])
        else:  # button on an inline message: answer the user privately
            sender = query.get("from")
            chat_id = sender.get("id") if isinstance(sender, dict) else None
            if not isinstance(chat_id, int):
                raise MalformedUpdate("callback_query without chat or user id")
        data = query.get("data")
        return Incoming(chat_id, clean_text(data) if isinstance(data, str) else "", callback_query_id=query["id"])
    return None


class SeenUpdates:
    """Which update ids were already handled, so a re-delivery is answered once only.

    `first_time(update_id)` is True exactly once per id: in the process for the last
    `capacity` ids, and with a Redis URL across all replicas (one atomic SET NX with an
    expiry per id). When Redis fails, the in-process record alone decides (answering a
    re-delivery twice is better than answering nothing).
    """

    def __init__(self, bot_id: str, redis_url: str = "", capacity: int = SEEN_UPDATES_IN_PROCESS,
                 expiry_seconds: int = SEEN_UPDATE_SECONDS_IN_REDIS) -> None:
        self.capacity = capacity
        self.expiry_seconds = expiry_seconds
        self.key_prefix = f"revierlotse:telegram:update:{bot_id}:"  # update ids are per bot
        self._recent: "OrderedDict[int, None]" = OrderedDict()
        self.redis = None
        if redis_url:
            import redis.asyncio

            self.redis = redis.asyncio.Redis.from_url(
                redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)

    def __len__(self) -> int:
        return len(self._recent)

    def _remember(self, update_id: int) -> bool:
        if update_id in self._recent:
            return False
        self._recent[update_id] = None
        while len(self._recent) > self.capacity:
            self._recent.popitem(last=False)
        return True

    async def first_time(self, update_id: int) -> bool:
        if not self._remember(update_id):
            return False
        if self.redis is None:
            return True
        import redis

        try:
            return bool(await self.redis.set(self.key_prefix + str(update_id), b"1", nx=True, ex=self.expiry_seconds))
        except (redis.RedisError, OSError) as error:
            logger.warning("Telegram: could not record an update id in Redis, only this replica knows it: %s",
                           type(error).__name__)
            return True

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()


def bot_id_of(token: str) -> str:
    """The bot's numeric id, the part of the token before the colon."""
    return token.split(":", 1)[0]


def refuse_rest_of_body(request: Request) -> None:
    """After the answer, close the connection instead of reading what is left of the body.

    Sanic would otherwise drain an unread body once the handler returns, waiting for as
    many bytes as the client declared (up to its own 100 MB limit).
    """
    stream = request.stream
    if stream is not None:
        stream.request_body = None  # nothing left to drain
        stream.keep_alive = False  # "Connection: close", then the connection ends


class TelegramInput(InputChannel):
    """Telegram webhook, secured with the Bot API's secret token header."""

    @classmethod
    def name(cls) -> Text:
        return "telegram"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        credentials = credentials or {}
        return cls(credentials.get("access_token"), credentials.get("secret_token"), credentials.get("api_url"))

    def __init__(self, access_token: Optional[str], secret_token: Optional[str], api_url: Optional[str] = None) -> None:
        settings = get_settings()
        self.secret_token = (secret_token or "").strip()
        self.max_request_bytes = settings.max_request_bytes
        self.output: Optional[TelegramOutput] = None
        self.seen: Optional[SeenUpdates] = None
        token = (access_token or "").strip()
        if not token:
            logger.info("Telegram channel off (TELEGRAM_TOKEN is empty)")
            return
        try:
            self.output = TelegramOutput(make_bot(token, (api_url or "").strip() or DEFAULT_API_URL))
        except ValidationError:
            logger.error("Telegram channel off: TELEGRAM_TOKEN is not a valid bot token (expected 123456:ABC...)")
            return
        self.seen = SeenUpdates(bot_id_of(token), settings.redis_url)
        if not self.secret_token:
            logger.error("TELEGRAM_SECRET_TOKEN is empty: every Telegram update will be rejected with 403")
        logger.info("Telegram channel on; register the webhook with `make telegram-webhook`")

    @property
    def enabled(self) -> bool:
        return self.output is not None

    def get_output_channel(self) -> Optional[OutputChannel]:
        return self.output

    def is_signed(self, request: Request) -> bool:
        """Whether the request carries our secret token (compared in constant time)."""
        given = request.headers.get(SECRET_HEADER, "")
        return bool(self.secret_token) and hmac.compare_digest(given.encode("utf-8"), self.secret_token.encode("utf-8"))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        telegram_webhook = Blueprint("revierlotse_telegram", __name__)

        @telegram_webhook.listener("after_server_stop")
        async def close_bot_session(*_: Any) -> None:
            if self.output is not None:
                await self.output.close()
            if self.seen is not None:
                await self.seen.close()

        @telegram_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.enabled else "off"})

        @telegram_webhook.route("/webhook", methods=["POST"], stream=True)
        async def webhook(request: Request) -> HTTPResponse:
            # Streamed: Sanic has read the headers only. Nothing of the body is read
            # before the secret is checked and the size is known to be acceptable.
            if not self.enabled:
                refuse_rest_of_body(request)
                return response.json({"error": "telegram channel off"}, status=503)
            if not self.is_signed(request):
                refuse_rest_of_body(request)
                logger.info("Telegram: rejected a webhook request without the right secret token")
                return response.json({"error": "forbidden"}, status=403)
            try:
                body = await read_body(request, self.max_request_bytes)
            except Exception as error:  # noqa: BLE001 - e.g. a broken chunked encoding
                refuse_rest_of_body(request)
                logger.info("Telegram: unreadable request body (%s)", type(error).__name__)
                return response.json({"error": "malformed update"}, status=400)
            if body is None:
                refuse_rest_of_body(request)
                logger.info("Telegram: refused an update larger than %d bytes", self.max_request_bytes)
                return response.json({"error": "request too large"}, status=413)
            try:
                update = json.loads(body)
                if not isinstance(update, dict):
                    raise MalformedUpdate("update is not a JSON object")
                update_id = update.get("update_id")
                if not isinstance(update_id, int) or isinstance(update_id, bool):
                    raise MalformedUpdate("update without update_id")
                incoming = parse_update(update)
            except (ValueError, UnicodeDecodeError, RecursionError) as error:  # MalformedUpdate is a ValueError
                logger.info("Telegram: malformed update (%s)", type(error).__name__)
                return response.json({"error": "malformed update"}, status=400)
            if incoming is None:
                return response.json({"status": "ignored"})
            if not await self.seen.first_time(update_id):
                logger.info("Telegram: update delivered again, already handled")
                return response.json({"status": "duplicate"})
            await self.handle(incoming, on_new_message)
            return response.json({"status": "ok"})

        return telegram_webhook

    async def handle(self, incoming: Incoming, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """Run one update. Failures are logged and answered, never retried by Telegram."""
        assert self.output is not None
        if incoming.callback_query_id:
            try:
                await self.output.bot.answer_callback_query(incoming.callback_query_id)
            except Exception as error:  # noqa: BLE001 - the button's answer matters more
                logger.warning("Telegram: answerCallbackQuery failed: %s", error)
        try:
            if incoming.only_text_hint:
                await self.output.send_text_message(str(incoming.chat_id), notices.ONLY_TEXT)
            elif incoming.text:
                await on_new_message(UserMessage(
                    incoming.text, self.output, sender_of_chat(incoming.chat_id), input_channel=self.name(),
                ))
        except Exception:  # noqa: BLE001 - a 5xx would make Telegram resend the update for hours
            logger.exception("Telegram: handling an update failed")
            await self._apologise(incoming.chat_id)

    async def _apologise(self, chat_id: int) -> None:
        from revierlotse.replies import apology_text

        try:
            await self.output.send_text_message(str(chat_id), apology_text(get_settings().knowledge_dir))
        except Exception as error:  # noqa: BLE001 - the Bot API itself may be what failed
            logger.warning("Telegram: could not send the apology either: %s", error)
