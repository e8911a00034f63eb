"""A fake Telegram Bot API on 127.0.0.1 that records every call.

    with FakeTelegram(token) as api:         # serves http://127.0.0.1:<free port>
        ... point TELEGRAM_API_URL at api.url ...
        [call] = api.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 42)

It answers the methods the bot uses the way Telegram does (sendMessage returns a full
Message object, which aiogram parses), rejects a wrong token with 401, unknown
methods with 404 and a command menu Telegram would refuse (setMyCommands) with 400. It runs aiohttp in a background thread, so synchronous tests can
post webhooks and then wait, with a deadline, for the calls to arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from aiohttp import web

JSON_FIELDS = {"reply_markup", "allowed_updates", "entities", "commands"}
# What the Bot API accepts in setMyCommands.
BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


class BadRequest(Exception):
    """The Bot API's 400 answer, with Telegram's description."""


@dataclass
class Call:
    method: str
    params: Dict[str, Any]

    @property
    def chat_id(self) -> Optional[int]:
        value = self.params.get("chat_id")
        return int(value) if value is not None and str(value).lstrip("-").isdigit() else value

    @property
    def text(self) -> str:
        return self.params.get("text", "")

    @property
    def button_rows(self) -> List[List[Dict[str, Any]]]:
        return (self.params.get("reply_markup") or {}).get("inline_keyboard", [])


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: List[Call] = []
        self.commands: List[Dict[str, Any]] = []  # the menu setMyCommands registered
        self._changed = threading.Condition()
        self._message_ids = itertools.count(1)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> "FakeTelegram":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/bot{token}/{method}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Bot API did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "FakeTelegram":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what tests ask ------------------------------------------------------------
    def calls_to(self, method: str, chat_id: Optional[int] = None) -> List[Call]:
        with self._changed:
            return [c for c in self.calls if c.method == method and (chat_id is None or c.chat_id == chat_id)]

    def wait_for(self, predicate: Callable[[Call], bool], count: int = 1, timeout: float = 60.0) -> List[Call]:
        """The first `count` recorded calls matching `predicate`, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [c for c in self.calls if predicate(c)]
                if len(matching) >= count:
                    return matching[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"fake Bot API got {len(matching)} of {count} expected calls; "
                                         f"all calls: {self.calls}")
                self._changed.wait(remaining)

    def wait_for_messages(self, chat_id: int, count: int = 1, timeout: float = 60.0) -> List[Call]:
        return self.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == chat_id, count, timeout)

    # -- the API ---------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        answer = getattr(self, f"_api_{method}", None)
        if answer is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                                     status=404)
        try:
            result = answer(params)
        except BadRequest as error:
            return web.json_response({"ok": False, "error_code": 400, "description": f"Bad Request: {error}"},
                                     status=400)
        with self._changed:
            self.calls.append(Call(method, params))
            self._changed.notify_all()
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _params(request: web.Request) -> Dict[str, Any]:
        params: Dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        for name in JSON_FIELDS & params.keys():
            if isinstance(params[name], str):
                params[name] = json.loads(params[name])
        return params

    def _bot_user(self) -> Dict[str, Any]:
        return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Revierlotse",
                "username": "revierlotse_test_bot"}

    def _api_sendMessage(self, params: Dict[str, Any]) -> Dict[str, Any]:
        chat_id = int(params["chat_id"])
        message = {
            "message_id": next(self._message_ids),
            "from": self._bot_user(),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "date": int(time.time()),
            "text": params.get("text", ""),
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _api_answerCallbackQuery(self, params: Dict[str, Any]) -> bool:
        return True

    def _api_setWebhook(self, params: Dict[str, Any]) -> bool:
        return True

    def _api_deleteWebhook(self, params: Dict[str, Any]) -> bool:
        return True

    def _api_setMyCommands(self, params: Dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not 0 < len(commands) <= 100:
            raise BadRequest("commands must be a list of 1-100 BotCommand objects")
        for command in commands:
            if not BOT_COMMAND.fullmatch(str(command.get("command", ""))):
                raise BadRequest(f"invalid command name {command.get('command')!r}")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise BadRequest("command description must be 1-256 characters")
        self.commands = commands
        return True

    def _api_getMyCommands(self, params: Dict[str, Any]) -> List[Dict[str, Any]]:
        return list(self.commands)

    def _api_getMe(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return self._bot_user()
