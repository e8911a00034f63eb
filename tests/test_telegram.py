"""Telegram channel: unit tests, the output against a fake Bot API, and end to end
through a real Rasa server whose Bot API is the fake (tests/fake_telegram.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Dict, List, Optional, Tuple

import pytest

from revierlotse import notices
from revierlotse.channels.telegram import (
    COMMAND_MENU, COMMANDS, MESSAGE_LIMIT, SEEN_UPDATE_SECONDS_IN_REDIS, SeenUpdates, TelegramOutput, make_bot,
    parse_update, sender_of_chat, split_text,
)
from revierlotse.settings import PROJECT_ROOT
from tests.conftest import ARTIFACTS, free_port, stack_overrides
from tests.fake_telegram import FakeTelegram
from tests.stored_events import slot_values, stored_events

TOKEN = "123456:TEST-token_for-the-fake"
SECRET = "test-secret_0123456789"
WEBHOOK = "/webhooks/telegram/webhook"
TOPIC_TITLES = ["Gehalt", "Fähigkeiten", "Alltag", "Kultur", "Weiterbildung", "Perspektiven"]
_ids = itertools.count(1000)


def next_id() -> int:
    return next(_ids)


def text_update(chat_id: int, text: str) -> Dict[str, Any]:
    return {"update_id": next_id(), "message": {
        "message_id": next_id(), "date": 1700000000, "text": text,
        "chat": {"id": chat_id, "type": "private", "first_name": "Test"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": "de"},
    }}


def button_update(chat_id: int, data: str, query_id: str) -> Dict[str, Any]:
    return {"update_id": next_id(), "callback_query": {
        "id": query_id, "chat_instance": "42", "data": data,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Test"},
        "message": {"message_id": next_id(), "date": 1700000000, "text": "Glück auf!",
                    "chat": {"id": chat_id, "type": "private"}},
    }}


# --- units --------------------------------------------------------------------------

def test_short_text_is_one_message():
    assert split_text("  Glück auf!  ") == ["Glück auf!"]


def test_long_text_is_split_below_the_limit_at_paragraphs():
    paragraphs = [f"Absatz {i}: " + "Das Revier wandelt sich. " * 40 for i in range(12)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(len(p) <= MESSAGE_LIMIT for p in pieces)
    assert all(p.startswith("Absatz") for p in pieces)  # cut between paragraphs
    assert " ".join(pieces).split() == text.split()


def test_text_without_spaces_and_with_emoji_is_cut_by_utf16_length():
    text = "😀" * 3000  # 6000 UTF-16 units
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(len(p.encode("utf-16-le")) // 2 <= MESSAGE_LIMIT for p in pieces)


@pytest.mark.parametrize("typed, for_rasa", [
    ("/start", "/greet"),
    ("/start@revierlotse_bot", "/greet"),
    ("/start ref-from-flyer", "/greet"),
    ("/hilfe", "/ask_capabilities"),
    ("/datenschutz", "/privacy_notice"),
    ("/loeschen", "/delete_data"),
    ("/loeschen@revierlotse_bot", "/delete_data"),
    ("/löschen", "/delete_data"),
    ("/ask_salary", "/ask_salary"),  # our own button payload, bare
    ('/ask_salary{"level": "senior"}', 'ask_salary{"level": "senior"}'),  # no slot injection
    ("/restart", "restart"),
    ("Was\x00 verdient\nein Einsteiger?", "Was verdient ein Einsteiger?"),
])
def test_typed_text_is_mapped_and_cleaned(typed, for_rasa):
    assert parse_update(text_update(7, typed)).text == for_rasa


def test_every_command_in_the_menu_is_one_the_channel_maps():
    assert [command for command, _ in COMMAND_MENU] == ["start", "hilfe", "datenschutz", "loeschen"]
    assert all(command in COMMANDS for command, _ in COMMAND_MENU)


def test_button_data_goes_through_the_guard():
    incoming = parse_update(button_update(7, '/greet{"name": "x"}', "q1"))
    assert incoming.callback_query_id == "q1" and incoming.chat_id == 7
    assert incoming.text == 'greet{"name": "x"}'


@pytest.mark.parametrize("kind", ["edited_message", "channel_post", "my_chat_member", "inline_query", "poll"])
def test_unhandled_update_types_are_ignored(kind):
    assert parse_update({"update_id": 1, kind: {"chat": {"id": 5}}}) is None


def test_service_messages_are_ignored_but_stickers_get_the_hint():
    service = {"update_id": 1, "message": {"chat": {"id": 5}, "new_chat_members": [{"id": 9}]}}
    assert parse_update(service) is None
    sticker = {"update_id": 2, "message": {"chat": {"id": 5}, "sticker": {"file_id": "x"}}}
    assert parse_update(sticker).only_text_hint


def test_an_update_id_is_new_once_and_the_record_is_bounded_by_count():
    async def run() -> Tuple[List[bool], List[bool], int]:
        seen = SeenUpdates("7", capacity=3)
        first = [await seen.first_time(i) for i in (1, 2, 1, 3, 2)]
        for i in (4, 5, 6):  # pushes 1, 2 and 3 out of the record
            await seen.first_time(i)
        again = [await seen.first_time(i) for i in (6, 1)]
        return first, again, len(seen)

    first, again, size = asyncio.run(run())
    assert first == [True, True, False, True, False]
    assert again == [False, True]
    assert size == 3


def test_two_replicas_sharing_redis_handle_an_update_id_once(redis_url):
    import redis

    bot_id = f"9{uuid.uuid4().int % 10**9}"
    client = redis.Redis.from_url(redis_url)

    async def run() -> List[bool]:
        replicas = [SeenUpdates(bot_id, redis_url), SeenUpdates(bot_id, redis_url)]
        try:
            results = await asyncio.gather(*(replica.first_time(update) for update in (41, 42)
                                              for replica in replicas))
            results.append(await replicas[1].first_time(41))  # and later again
            return results
        finally:
            for replica in replicas:
                await replica.close()

    try:
        results = asyncio.run(run())
        assert results[:4].count(True) == 2 and results[0] != results[1] and results[2] != results[3]
        assert results[4] is False
        ttl = client.ttl(f"revierlotse:telegram:update:{bot_id}:41")
        assert 0 < ttl <= SEEN_UPDATE_SECONDS_IN_REDIS
    finally:
        for key in client.scan_iter(f"revierlotse:telegram:update:{bot_id}:*"):
            client.delete(key)
        client.close()


def test_unreachable_redis_falls_back_to_the_record_in_the_process():
    async def run() -> List[bool]:
        seen = SeenUpdates("7", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
        try:
            return [await seen.first_time(5), await seen.first_time(5)]
        finally:
            await seen.close()

    assert asyncio.run(run()) == [True, False]


# --- the output channel against the fake Bot API (real HTTP, no Rasa) ----------------

@pytest.fixture
def fake_api():
    with FakeTelegram(TOKEN) as api:
        yield api


def test_output_splits_long_answers_and_sends_markup_characters_verbatim(fake_api):
    text = "\n\n".join(f"**Punkt {i}** <b>nicht fett</b> _kursiv_ [Link](x) " + "Wort " * 150
                       for i in range(10))
    buttons = [{"title": title, "payload": f"/ask_{i}"} for i, title in enumerate(TOPIC_TITLES)]

    async def send() -> None:
        output = TelegramOutput(make_bot(TOKEN, fake_api.url))
        try:
            await output.send_text_with_buttons("77", text, buttons)
        finally:
            await output.close()

    asyncio.run(send())
    sent = fake_api.calls_to("sendMessage", chat_id=77)
    assert len(sent) > 1
    assert all(len(c.text) <= 4096 for c in sent)
    assert " ".join(c.text for c in sent).split() == text.split()  # nothing escaped or lost
    assert all("parse_mode" not in c.params for c in sent)  # plain text: nothing is interpreted
    assert [c.button_rows for c in sent[:-1]] == [[]] * (len(sent) - 1)  # keyboard on the last one
    assert [b["text"] for row in sent[-1].button_rows for b in row] == TOPIC_TITLES


# --- `make telegram-webhook` ------------------------------------------------------------

def run_webhook_command(api_url: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": "/usr/bin:/bin", "HOME": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false",
        "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_SECRET_TOKEN": SECRET, "TELEGRAM_API_URL": api_url,
        "TELEGRAM_WEBHOOK_URL": f"https://bot.example.org{WEBHOOK}", **env,
    }
    return subprocess.run([sys.executable, "-m", "revierlotse.telegram_webhook"], cwd=PROJECT_ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


def test_webhook_command_registers_url_secret_and_drops_pending_updates(fake_api):
    result = run_webhook_command(fake_api.url)
    assert result.returncode == 0, result.stderr
    [call] = fake_api.calls_to("setWebhook")
    assert call.params["url"] == f"https://bot.example.org{WEBHOOK}"
    assert call.params["secret_token"] == SECRET
    assert call.params["drop_pending_updates"] == "true"
    assert call.params["allowed_updates"] == ["message", "callback_query"]


def test_webhook_command_registers_the_german_command_menu(fake_api):
    result = run_webhook_command(fake_api.url)
    assert result.returncode == 0, result.stderr
    [call] = fake_api.calls_to("setMyCommands")  # the fake refuses what Telegram would refuse
    assert [c["command"] for c in call.params["commands"]] == ["start", "hilfe", "datenschutz", "loeschen"]
    descriptions = {c["command"]: c["description"] for c in call.params["commands"]}
    assert "speichere" in descriptions["datenschutz"] and "löschen" in descriptions["loeschen"]
    assert fake_api.commands == call.params["commands"]
    assert "/datenschutz" in result.stderr  # the log line names the registered commands


def test_webhook_command_warns_clearly_when_the_bot_api_is_unreachable():
    result = run_webhook_command(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert result.returncode == 1
    assert "Could not register the Telegram webhook" in result.stderr
    assert "Traceback" not in result.stderr


def test_webhook_command_names_missing_settings():
    result = run_webhook_command("http://127.0.0.1:9", TELEGRAM_WEBHOOK_URL="http://insecure", TELEGRAM_SECRET_TOKEN="")
    assert result.returncode == 2
    assert "TELEGRAM_WEBHOOK_URL" in result.stderr and "TELEGRAM_SECRET_TOKEN" in result.stderr


# --- end to end: real Rasa server, fake Bot API ---------------------------------------------

class TelegramBot:
    def __init__(self, url: str, api: FakeTelegram, max_request_bytes: int = 16384) -> None:
        self.url = url + WEBHOOK
        self.api = api
        self.max_request_bytes = max_request_bytes

    def post(self, body: Any, secret: Optional[str] = SECRET) -> Tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        request = urllib.request.Request(self.url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def say(self, chat_id: int, text: str, count: int = 1) -> str:
        """Send `text` from `chat_id`; the text of the bot's replies to it."""
        before = len(self.api.calls_to("sendMessage", chat_id))
        status, _ = self.post(text_update(chat_id, text))
        assert status == 200
        return "\n".join(c.text for c in self.api.wait_for_messages(chat_id, before + count)[before:])


@pytest.fixture(scope="module")
def telegram(model, kb_url):
    from revierlotse.stack import Stack

    with FakeTelegram(TOKEN) as api:
        overrides = stack_overrides(kb_url, TELEGRAM_TOKEN=TOKEN, TELEGRAM_SECRET_TOKEN=SECRET,
                                    TELEGRAM_API_URL=api.url, TELEGRAM_WEBHOOK_URL="", RETENTION_DAYS="21",
                                    REDIS_URL="")  # update ids recorded in the process
        with Stack.default(model, overrides, log_dir=ARTIFACTS / "logs" / "telegram") as stack:
            yield TelegramBot(stack.rasa_url, api, stack.settings.max_request_bytes)


@pytest.mark.e2e
def test_server_start_makes_no_bot_api_call(telegram):
    assert telegram.api.calls_to("setWebhook") == [] and telegram.api.calls_to("getMe") == []


@pytest.mark.e2e
def test_salary_question_is_answered_in_german_with_the_entry_band(telegram):
    reply = telegram.say(next_id(), "Was verdient ein Einsteiger als IT Manager?")
    assert "4.200 bis 5.200 €" in reply and "Quelle:" in reply


@pytest.mark.e2e
def test_start_gives_greeting_with_topic_keyboard(telegram):
    chat = next_id()
    telegram.say(chat, "/start")
    [greeting] = telegram.api.calls_to("sendMessage", chat)
    assert "Glück auf" in greeting.text
    buttons = [b for row in greeting.button_rows for b in row]
    assert [b["text"] for b in buttons][:6] == TOPIC_TITLES
    assert buttons[0]["callback_data"] == "/ask_salary"


@pytest.mark.e2e
def test_button_press_is_answered_and_gives_that_topic(telegram):
    chat = next_id()
    status, _ = telegram.post(button_update(chat, "/ask_salary", "query-77"))
    assert status == 200
    telegram.api.wait_for(lambda c: c.method == "answerCallbackQuery" and c.params["callback_query_id"] == "query-77")
    assert "4.200 bis 5.200 €" in telegram.api.wait_for_messages(chat)[0].text


@pytest.mark.e2e
def test_each_chat_is_its_own_conversation(telegram):
    newcomer, other = next_id(), next_id()
    telegram.say(newcomer, "Ich bin Berufseinsteiger.")
    newcomer_reply = telegram.say(newcomer, "Wie hoch ist das Gehalt?")
    other_reply = telegram.say(other, "Wie hoch ist das Gehalt?")
    # The newcomer's chat remembers the level (entry answer); the other chat knows
    # nothing about its user and gets the overview of both bands.
    assert "4.200 bis 5.200 €" in newcomer_reply.split("\n")[0]  # the entry band leads
    assert "4.200 bis 5.200 €" not in other_reply.split("\n")[0]  # the overview's introduction leads
    assert "4.200 bis 5.200 €" in other_reply and "5.800 bis 7.200 €" in other_reply


@pytest.mark.e2e
@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1]])
def test_unsigned_or_forged_updates_get_403_and_reach_no_conversation(telegram, secret):
    forged_chat = next_id()
    status, _ = telegram.post(text_update(forged_chat, "Was verdient ein Einsteiger?"), secret=secret)
    assert status == 403
    # A signed update afterwards is answered; the forged chat still got nothing.
    assert telegram.say(next_id(), "Hallo")
    assert [c for c in telegram.api.calls if c.chat_id == forged_chat] == []


@pytest.mark.e2e
def test_forged_button_press_is_not_answered(telegram):
    status, _ = telegram.post(button_update(next_id(), "/ask_salary", "forged-query"), secret="nope")
    assert status == 403
    assert telegram.say(next_id(), "Hallo")
    assert not [c for c in telegram.api.calls_to("answerCallbackQuery")
                if c.params["callback_query_id"] == "forged-query"]


@pytest.mark.e2e
@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"', b'{"message": {"text": "hi"}}'])
def test_malformed_updates_get_400(telegram, body):
    assert telegram.post(body)[0] == 400


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["edited_message", "channel_post", "my_chat_member", "edited_channel_post"])
def test_unsupported_update_types_get_200_and_no_reply(telegram, kind):
    chat = next_id()
    update = text_update(chat, "Was verdient ein Einsteiger?")
    update[kind] = update.pop("message")
    assert telegram.post(update) == (200, {"status": "ignored"})
    assert telegram.say(next_id(), "Hallo")
    assert [c for c in telegram.api.calls if c.chat_id == chat] == []


@pytest.mark.e2e
@pytest.mark.parametrize("content", [
    {"sticker": {"file_id": "s", "file_unique_id": "s", "width": 512, "height": 512, "is_animated": False}},
    {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 90, "height": 90}]},
    {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}},
])
def test_stickers_photos_and_voice_get_the_only_text_hint(telegram, content):
    chat = next_id()
    update = text_update(chat, "")
    del update["message"]["text"]
    update["message"].update(content)
    assert telegram.post(update)[0] == 200
    [hint] = telegram.api.wait_for_messages(chat)
    assert hint.text == notices.ONLY_TEXT and "nur Text" in hint.text


@pytest.mark.e2e
def test_channel_is_off_without_token_and_rest_still_works(bot):
    if bot.stack.settings.telegram_token:
        pytest.skip("TELEGRAM_TOKEN is set in this environment")
    request = urllib.request.Request(bot.url + WEBHOOK, data=json.dumps(text_update(1, "Hallo")).encode(),
                                     headers={"Content-Type": "application/json",
                                              "X-Telegram-Bot-Api-Secret-Token": "x"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    assert error.value.code == 503
    assert "Glück auf" in bot.ask_text("Hallo!")


@pytest.mark.e2e
def test_datenschutz_says_what_is_stored_for_how_long_and_how_to_delete(telegram):
    reply = telegram.say(next_id(), "/datenschutz")
    assert "Datenschutz" in reply and "21 Tage" in reply  # RETENTION_DAYS of this stack
    assert "Chat-ID" in reply and "/loeschen" in reply and "Lösch meine Daten" in reply


@pytest.mark.e2e
def test_loeschen_erases_every_stored_event_of_the_chat(telegram, kb_url):
    chat = next_id()
    telegram.say(chat, "Ich bin Berufseinsteiger.")
    telegram.say(chat, "Was verdient man als IT Manager?")
    assert stored_events(kb_url, sender_of_chat(chat))
    reply = telegram.say(chat, "/loeschen")
    assert reply.startswith("Ich habe unser Gespräch gelöscht")
    assert stored_events(kb_url, sender_of_chat(chat)) == []
    # The chat goes on as a new conversation that knows nothing of the old one.
    reply = telegram.say(chat, "Was verdient man als IT Manager?")
    assert "4.200 bis 5.200 €" in reply and "5.800 bis 7.200 €" in reply
    assert "Ich bin Berufseinsteiger." not in str(stored_events(kb_url, sender_of_chat(chat)))


@pytest.mark.e2e
def test_fact_answers_carry_rating_buttons_and_a_press_is_stored(telegram, kb_url):
    chat = next_id()
    telegram.say(chat, "Was verdient ein Einsteiger als IT Manager?")
    [answer] = telegram.api.calls_to("sendMessage", chat)
    buttons = {b["text"]: b["callback_data"] for row in answer.button_rows for b in row}
    assert buttons["👍 Hilfreich"] == "/feedback_helpful" and buttons["👎 Nicht hilfreich"] == "/feedback_unhelpful"

    status, _ = telegram.post(button_update(chat, buttons["👎 Nicht hilfreich"], "rate-1"))
    assert status == 200
    telegram.api.wait_for(lambda c: c.method == "answerCallbackQuery" and c.params["callback_query_id"] == "rate-1")
    offer = telegram.api.wait_for_messages(chat, 2)[1].text
    assert "was dir gefehlt hat" in offer
    assert "Hinweis notiert" in telegram.say(chat, "Mir fehlt, was man in Teilzeit verdient")

    [rating] = slot_values(kb_url, sender_of_chat(chat), "answer_feedback")
    assert rating["rating"] == "unhelpful" and rating["topic"] == "salary" and rating["facts"]
    assert rating["question"] == "Was verdient ein Einsteiger als IT Manager?"
    assert "Mir fehlt, was man in Teilzeit verdient" in slot_values(kb_url, sender_of_chat(chat), "feedback_comment")


# --- re-deliveries: the same update_id again is answered once -------------------------

def settle(bot: "TelegramBot") -> None:
    """Wait until a fresh update has been answered, so anything sent before it is in."""
    assert bot.say(next_id(), "Hallo")


@pytest.mark.e2e
def test_a_redelivered_update_gets_200_and_no_second_reply(telegram):
    chat = next_id()
    update = text_update(chat, "Was verdient ein Einsteiger als IT Manager?")
    assert telegram.post(update) == (200, {"status": "ok"})
    assert telegram.post(update) == (200, {"status": "duplicate"})
    settle(telegram)
    [answer] = telegram.api.calls_to("sendMessage", chat)
    assert "4.200 bis 5.200 €" in answer.text


@pytest.mark.e2e
def test_an_update_delivered_twice_at_once_is_answered_once(telegram):
    chat = next_id()
    update = text_update(chat, "Was verdient ein Einsteiger als IT Manager?")
    statuses: List[int] = []
    posts = [threading.Thread(target=lambda: statuses.append(telegram.post(update)[0])) for _ in range(2)]
    for post in posts:
        post.start()
    for post in posts:
        post.join(timeout=90)
    assert statuses == [200, 200]
    settle(telegram)
    assert len(telegram.api.calls_to("sendMessage", chat)) == 1


@pytest.mark.e2e
def test_a_redelivered_button_press_is_answered_once(telegram):
    chat = next_id()
    press = button_update(chat, "/ask_salary", "query-twice")
    assert telegram.post(press)[0] == 200
    assert telegram.post(press) == (200, {"status": "duplicate"})
    settle(telegram)
    assert len(telegram.api.calls_to("sendMessage", chat)) == 1
    assert len([c for c in telegram.api.calls_to("answerCallbackQuery")
                if c.params["callback_query_id"] == "query-twice"]) == 1


@pytest.mark.e2e
def test_an_update_without_update_id_gets_400(telegram):
    chat = next_id()
    update = text_update(chat, "Hallo")
    del update["update_id"]
    assert telegram.post(update)[0] == 400
    update["update_id"] = "1"
    assert telegram.post(update)[0] == 400
    settle(telegram)
    assert telegram.api.calls_to("sendMessage", chat) == []


@pytest.fixture
def telegram_replicas(model, postgres_url, redis_url):
    """Two Rasa servers sharing PostgreSQL and Redis, one fake Bot API; a bot of its own
    (a fresh bot id), so update ids recorded in Redis by earlier runs do not count."""
    import redis

    from revierlotse.db import make_engine
    from revierlotse.kb.loader import load_knowledge
    from revierlotse.stack import Stack

    engine = make_engine(postgres_url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    bot_id = f"8{uuid.uuid4().int % 10**9}"
    token = f"{bot_id}:TEST-replica_token-for-the-fake"
    with FakeTelegram(token) as api:
        overrides = stack_overrides(postgres_url, REDIS_URL=redis_url, TELEGRAM_TOKEN=token,
                                    TELEGRAM_SECRET_TOKEN=SECRET, TELEGRAM_API_URL=api.url, TELEGRAM_WEBHOOK_URL="")
        stack = Stack.default(model, overrides, log_dir=ARTIFACTS / "logs" / "telegram-replicas",
                              replica_ports=[free_port()])
        try:
            with stack:
                yield [TelegramBot(url, api) for url in stack.rasa_urls]
        finally:
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"revierlotse:telegram:update:{bot_id}:*"):
                client.delete(key)
            client.close()


@pytest.mark.e2e
def test_two_replicas_with_redis_answer_a_redelivered_update_once(telegram_replicas):
    first, second = telegram_replicas
    chat = next_id()
    update = text_update(chat, "Was verdient ein Einsteiger als IT Manager?")
    assert first.post(update) == (200, {"status": "ok"})
    assert second.post(update) == (200, {"status": "duplicate"})  # the other replica knows it
    at_once = text_update(next_id(), "Hallo")  # and delivered to both at the same moment
    statuses: List[Any] = []
    posts = [threading.Thread(target=lambda bot=bot: statuses.append(bot.post(at_once)[1]))
             for bot in telegram_replicas]
    for post in posts:
        post.start()
    for post in posts:
        post.join(timeout=90)
    assert sorted(s["status"] for s in statuses) == ["duplicate", "ok"]
    settle(second)
    settle(first)
    assert len(first.api.calls_to("sendMessage", chat)) == 1
    assert len(first.api.calls_to("sendMessage", at_once["message"]["chat"]["id"])) == 1


# --- bodies: secret first, oversized bodies refused before they are read ---------------

def raw_post(url: str, head: Dict[str, str], body: bytes = b"", chunks: List[bytes] = (),
             timeout: float = 10.0) -> Tuple[int, bytes, float, bool]:
    """POST over a plain socket: the headers in `head`, then `body` or `chunks` (chunked
    encoding, never terminated), then nothing more. Returns the status, the whole
    answer, the seconds until the server closed the connection, and whether it did."""
    parts = urllib.parse.urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
             *(f"{name}: {value}" for name, value in head.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    request += b"".join(b"%x\r\n%b\r\n" % (len(chunk), chunk) for chunk in chunks)
    started = time.monotonic()
    answer, closed = b"", False
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as connection:
        connection.sendall(request)
        try:
            while True:
                data = connection.recv(65536)
                if not data:
                    closed = True
                    break
                answer += data
        except socket.timeout:
            pass
    elapsed = time.monotonic() - started
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, elapsed, closed


@pytest.mark.e2e
@pytest.mark.parametrize("declared", ["limit+1", 10**6, 10**9])
def test_a_huge_declared_body_is_refused_at_once_without_waiting_for_it(telegram, declared):
    length = telegram.max_request_bytes + 1 if declared == "limit+1" else declared
    head = {"Content-Length": str(length)}
    sent = json.dumps(text_update(next_id(), "Hallo")).encode()[:200]  # a little of it, then silence

    status, answer, elapsed, closed = raw_post(telegram.url, head, sent)
    assert (status, closed) == (403, True), answer
    assert elapsed < 5

    status, answer, elapsed, closed = raw_post(telegram.url, {**head, "X-Telegram-Bot-Api-Secret-Token": SECRET}, sent)
    assert (status, closed) == (413, True), answer
    assert elapsed < 5


@pytest.mark.e2e
def test_a_chunked_body_is_refused_once_it_grows_past_the_limit(telegram):
    chunk = b" " * 4096
    chunks = [chunk] * (telegram.max_request_bytes // len(chunk) + 1)  # just past the limit, never ended
    head = {"Transfer-Encoding": "chunked"}

    status, answer, elapsed, closed = raw_post(telegram.url, head)  # no secret: refused before any chunk
    assert (status, closed) == (403, True), answer
    assert elapsed < 5

    status, answer, elapsed, closed = raw_post(telegram.url, {**head, "X-Telegram-Bot-Api-Secret-Token": SECRET},
                                               chunks=chunks)
    assert (status, closed) == (413, True), answer
    assert elapsed < 5


@pytest.mark.e2e
def test_a_chunked_update_within_the_limit_is_answered(telegram):
    chat = next_id()
    body = json.dumps(text_update(chat, "Hallo")).encode()
    parts = urllib.parse.urlsplit(telegram.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall((f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                            f"Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n").encode()
                           + b"".join(b"%x\r\n%b\r\n" % (len(body[i:i + 50]), body[i:i + 50])
                                      for i in range(0, len(body), 50)) + b"0\r\n\r\n")
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert "Glück auf" in telegram.api.wait_for_messages(chat)[0].text
