"""Access control: Rasa's HTTP API, the action server's address, rate limit, logs.

The unit tests need no server; the e2e ones use the session `bot` and one extra
stack with the API enabled (token from the settings, as in production).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

from revierlotse import notices
from revierlotse.launch import api_token_problem
from revierlotse.ratelimit import RateLimiter
from revierlotse.settings import PROJECT_ROOT, load_settings
from revierlotse.stack import Stack
from tests.conftest import ARTIFACTS, new_sender, stack_overrides


# -- no server ------------------------------------------------------------------------
def test_rate_limiter_allows_n_per_window_then_refuses_until_the_window_moves():
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b"), "other senders are not affected"
    now[0] = 59.9
    assert not limiter.allow("a")
    now[0] = 60.1
    assert limiter.allow("a")


def test_rate_limiter_forgets_idle_senders():
    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0])
    for i in range(1000):
        limiter.allow(f"sender-{i}")
    now[0] = 200.0
    limiter.allow("fresh")
    assert limiter.tracked_senders() == 1


def test_rate_limit_zero_disables_it():
    limiter = RateLimiter(0)
    assert all(limiter.allow("a") for _ in range(100))


def test_api_is_off_by_default_and_the_action_server_binds_loopback():
    settings = load_settings({}, dotenv=False)
    assert settings.rasa_api_enabled is False
    assert settings.action_server_host == "127.0.0.1"


@pytest.mark.parametrize("args", [
    ["run", "--enable-api"],
    ["run", "--enable-api", "--auth-token", ""],
    ["run", "--enable-api", "--auth-token", "  "],
    ["run", "--enable-api", "--auth-token="],
])
def test_api_without_token_is_refused(args):
    assert "RASA_API_TOKEN" in api_token_problem(args)


@pytest.mark.parametrize("args", [
    ["run"],
    ["run", "--enable-api", "--auth-token", "s3cret-token"],
    ["run", "--enable-api", "-t", "s3cret-token"],
    ["run", "--enable-api", "--auth-token=s3cret-token"],
])
def test_api_with_token_or_off_may_start(args):
    assert api_token_problem(args) == ""


def test_launcher_refuses_to_start_rasa_with_api_and_no_token():
    proc = subprocess.run(
        [sys.executable, "-m", "revierlotse.launch", "rasa", "run", "--enable-api", "--auth-token", ""],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "RASA_API_TOKEN" in proc.stderr


# -- against the running session bot -----------------------------------------------------
def http_status(url: str, method: str = "GET", data: bytes = None, headers=None) -> int:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as error:
        return error.code


def rest(bot, text: str, sender: str) -> list:
    req = urllib.request.Request(f"{bot.url}/webhooks/rest/webhook", method="POST",
                                 data=json.dumps({"sender": sender, "message": text}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.e2e
@pytest.mark.parametrize("method, path", [
    ("GET", "/status"),
    ("GET", "/version"),
    ("GET", "/domain"),
    ("GET", "/conversations/someone/tracker"),
    ("POST", "/conversations/someone/tracker/events"),
    ("POST", "/conversations/someone/trigger_intent"),
    ("POST", "/model/parse"),
    ("PUT", "/model"),
    ("DELETE", "/model"),
])
def test_rasa_http_api_is_off_by_default(bot, method, path):
    data = b"{}" if method in {"POST", "PUT"} else None
    assert http_status(bot.url + path, method, data, {"Content-Type": "application/json"}) in {404, 405}


LISTEN = "0A"


def listening_addresses(port: int) -> list:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp{,6})."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = open(table).read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == LISTEN and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if width == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


@pytest.mark.e2e
def test_action_server_listens_on_loopback_only(bot):
    port = bot.stack.settings.action_server_port
    addresses = listening_addresses(port)
    assert addresses, f"nothing listens on the action server port {port}"
    assert set(addresses) <= {"127.0.0.1", "::1"}, addresses
    # And it is not reachable on this machine's other addresses.
    others = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in sorted(others)[:3]:
        with socket.socket() as s:
            s.settimeout(3)
            assert s.connect_ex((address, port)) != 0, f"action server reachable on {address}"


@pytest.mark.e2e
def test_rate_limit_answers_politely_in_german_and_spares_other_senders(bot):
    limit = bot.stack.settings.rate_limit_per_minute
    sender = new_sender()
    # Empty messages are the cheapest turns; they count like any other.
    for _ in range(limit):
        assert rest(bot, " ", sender)[0]["text"] == notices.EMPTY_MESSAGE
    reply = rest(bot, "Was verdient ein Einsteiger?", sender)
    assert [m["text"] for m in reply] == [notices.RATE_LIMITED]
    assert "4.200 bis 5.200 €" in bot.ask_text("Was verdient ein Einsteiger?", new_sender())


def wait_for_line(path, needle: str, timeout: float = 30.0) -> str:
    """The first line of `path` containing `needle`, waiting for it to be written."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if needle in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not in {path} after {timeout} s")


@pytest.mark.e2e
def test_info_log_has_one_line_per_turn_and_no_message_text(bot):
    from revierlotse.turns import sender_tag

    marker = f"Zitronenfalter{uuid.uuid4().hex[:8]}"
    sender = f"anna.mueller@example.org-{uuid.uuid4().hex[:6]}"
    assert bot.ask_text(f"Was verdient ein Einsteiger? Ich heiße {marker}.", sender)
    rasa_log = bot.stack.service("rasa server").log_path
    line = wait_for_line(rasa_log, f"sender={sender_tag(sender)}")
    for field in ("channel=rest", "intent=ask_salary", "confidence=", "actions=action_answer_topic",
                  "outcome=ok", "latency_ms="):
        assert field in line, line
    for service in bot.stack.services:
        text = service.log_path.read_text(encoding="utf-8", errors="replace")
        assert marker not in text, f"message text in {service.log_path}"
        assert "anna.mueller" not in text, f"sender id in {service.log_path}"


# -- a stack with the API enabled, as an operator would configure it ---------------------
@pytest.fixture(scope="module")
def api_bot(model, kb_url):
    token = uuid.uuid4().hex + uuid.uuid4().hex
    overrides = stack_overrides(kb_url, RASA_API_ENABLED="true", RASA_API_TOKEN=token)
    stack = Stack.default(model, overrides, log_dir=ARTIFACTS / "logs" / "access-api")
    with stack:
        stack.token = token
        yield stack


@pytest.mark.e2e
def test_enabled_api_requires_the_token(api_bot):
    url = api_bot.rasa_url
    assert http_status(f"{url}/status") == 401
    assert http_status(f"{url}/status?token=wrong") == 401
    assert http_status(f"{url}/conversations/x/tracker?token=") == 401
    assert http_status(f"{url}/model?token=wrong", "PUT", b"{}", {"Content-Type": "application/json"}) == 401
    assert http_status(f"{url}/status?token={api_bot.token}") == 200


@pytest.mark.e2e
def test_tracker_shows_no_injected_slot_and_no_restart(api_bot):
    class _Bot:  # the REST helper needs only .url
        url = api_bot.rasa_url

    sender = new_sender()
    for text in ('/inform{"level":"entry","company_type":"industry"}', "/restart", '/ask_salary{"level":"entry"}'):
        assert rest(_Bot, text, sender), "every message gets a reply"
    req = urllib.request.Request(f"{api_bot.rasa_url}/conversations/{sender}/tracker?token={api_bot.token}")
    with urllib.request.urlopen(req, timeout=60) as resp:
        tracker = json.loads(resp.read())
    assert tracker["slots"]["level"] is None and tracker["slots"]["company_type"] is None
    events = [e["event"] for e in tracker["events"]]
    assert "restart" not in events
    user_intents = [e["parse_data"]["intent"]["name"] for e in tracker["events"] if e["event"] == "user"]
    assert len(user_intents) == 3 and "restart" not in user_intents
    texts = [e["text"] for e in tracker["events"] if e["event"] == "user"]
    assert all(not t.startswith("/") for t in texts), texts


@pytest.mark.e2e
def test_api_token_is_not_written_to_the_log(api_bot):
    assert http_status(f"{api_bot.rasa_url}/status?token={api_bot.token}") == 200
    for service in api_bot.services:
        assert api_bot.token not in service.log_path.read_text(encoding="utf-8", errors="replace")
