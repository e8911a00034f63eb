"""The web page server (`python -m revierlotse.web`) as its own process: the same security
headers on every answer (error pages included), a connect-src that names hosts, and a
log that control characters in a request cannot garble."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
import uuid

import pytest

from revierlotse.settings import load_settings
from revierlotse.stack import Stack, settings_env, web_server
from revierlotse.web import content_security_policy, escape_controls, socket_sources
from tests.conftest import ARTIFACTS, free_port

HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


def settings_for(**env: str):
    return load_settings({"RASA_PORT": "5005", **env}, dotenv=False)


def connect_src(policy: str) -> list:
    directive = next(d.strip() for d in policy.split(";") if d.strip().startswith("connect-src"))
    return directive.split()[1:]


def test_connect_src_names_the_page_origins_hosts_on_the_rasa_port():
    settings = settings_for(CORS_ORIGINS="http://localhost:8080, https://bot.example.org")
    assert socket_sources(settings) == ["http://localhost:5005", "ws://localhost:5005",
                                        "https://bot.example.org:5005", "wss://bot.example.org:5005"]
    assert connect_src(content_security_policy(settings)) == ["'self'", *socket_sources(settings)]


def test_connect_src_is_the_public_socket_url_behind_a_proxy():
    settings = settings_for(CORS_ORIGINS="https://bot.example.org", WEB_SOCKET_URL="https://bot.example.org/")
    assert connect_src(content_security_policy(settings)) == ["'self'", "https://bot.example.org",
                                                              "wss://bot.example.org"]


@pytest.mark.parametrize("env", [
    {"CORS_ORIGINS": "http://localhost:8080,http://127.0.0.1:8080"},
    {"CORS_ORIGINS": "http://*.example.org"},
    {"CORS_ORIGINS": "http://a.example;script-src *"},
    {"WEB_SOCKET_URL": "https://*.example.org"},
    {"WEB_SOCKET_URL": "https://x.example.org; script-src 'unsafe-inline'"},
])
def test_connect_src_never_has_a_wildcard_or_a_smuggled_directive(env):
    policy = content_security_policy(settings_for(**env))
    assert "*" not in policy
    assert policy.count("script-src") == 1 and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_control_characters_are_escaped():
    assert escape_controls('"GET /\x1b[31mrot\x1b[0m\r\nINFO gefälscht HTTP/1.1" 404 -') == \
        '"GET /\\x1b[31mrot\\x1b[0m\\x0d\\x0aINFO gefälscht HTTP/1.1" 404 -'
    assert escape_controls("\x00\x7f\x85ok") == "\\x00\\x7f\\x85ok"


@pytest.fixture(scope="module")
def page_server():
    port = free_port()
    settings = load_settings({"WEB_HOST": "127.0.0.1", "WEB_PORT": str(port), "RASA_PORT": "5005",
                              "CORS_ORIGINS": f"http://127.0.0.1:{port}"}, dotenv=False)
    env = {**settings_env(settings), "WEB_HOST": "127.0.0.1", "CORS_ORIGINS": f"http://127.0.0.1:{port}",
           "LOG_LEVEL": "INFO"}
    log_dir = ARTIFACTS / "logs" / "web-page-server"
    log_dir.mkdir(parents=True, exist_ok=True)
    service = web_server(settings, env, log_dir)
    with Stack([service]) as stack:
        stack.port = port
        stack.log_path = service.log_path
        yield stack


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def header_names(response: bytes) -> set:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {line.split(":", 1)[0].strip().lower() for line in head if ":" in line}


@pytest.mark.e2e
@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /nichts.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"404"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"501"),
    (b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"501"),
    (b"GET / HTTP/9.9\r\n\r\n", b"505"),
    (b"GET /\x00 kaputt HTTP/1.1 mehr\r\n\r\n", b"400"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414"),
], ids=["not found", "POST", "DELETE", "bad version", "bad request line", "URI too long"])
def test_error_pages_carry_the_security_headers(page_server, request_bytes, status):
    response = raw_request(page_server.port, request_bytes)
    assert response.split(b" ", 2)[1] == status, response[:200]
    names = header_names(response)
    for header in HEADERS:
        assert header.lower() in names, (header, response[:400])
    assert b"Traceback" not in response and b"Python" not in response


@pytest.mark.e2e
def test_pages_carry_a_connect_src_without_wildcards(page_server):
    with urllib.request.urlopen(f"http://127.0.0.1:{page_server.port}/", timeout=10) as resp:
        policy = resp.headers["Content-Security-Policy"]
    assert "*" not in policy
    assert connect_src(policy) == ["'self'", "http://127.0.0.1:5005", "ws://127.0.0.1:5005"]


@pytest.mark.e2e
def test_control_characters_in_a_request_do_not_reach_the_log_raw(page_server):
    marker = uuid.uuid4().hex[:8]
    forged = f"GET /{marker}\x1b[2J\rINFO revierlotse.web gefaelscht-{marker} HTTP/1.1\r\n\r\n".encode()
    raw_request(page_server.port, forged)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{page_server.port}/{marker}%0aINFO-x", timeout=10)
    except urllib.error.HTTPError:
        pass
    deadline = time.monotonic() + 10
    lines = []
    while time.monotonic() < deadline:
        lines = [line for line in page_server.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if marker in line]
        if len(lines) >= 2:
            break
        time.sleep(0.2)
    assert lines, "the requests were logged"
    for line in lines:
        assert "\x1b" not in line and "\r" not in line
        assert not line.startswith("INFO revierlotse.web gefaelscht")
    assert any("\\x1b" in line for line in lines), lines
    log = page_server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "\x1b" not in log
