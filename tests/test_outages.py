"""Outages: the user always gets a short German apology, and the bot recovers by itself.

These tests stop and restart the real action server of the session `bot` (and point it
at a PostgreSQL database they take down); a fixture puts the original one back. The
last test runs a stack of its own whose knowledge base AND conversations live in one
PostgreSQL database, as in production, and takes that database down.
"""

from __future__ import annotations

import socket
import threading
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.replies import apology_text
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Service, Stack
from tests.conftest import ARTIFACTS, POSTGRES_TEST_URL, Bot, new_sender, postgres_admin, stack_overrides

pytestmark = pytest.mark.e2e

SALARY = "Was verdient ein Einsteiger als IT Manager?"
ENTRY_BAND = "4.200 bis 5.200 €"
APOLOGY = apology_text(PROJECT_ROOT / "data" / "knowledge")


@pytest.fixture
def action_server(bot) -> Iterator[Service]:
    """The session bot's action server; afterwards running again with its original settings."""
    service = bot.stack.service("action server")
    original_env = dict(service.env)
    yield service
    if service.env != original_env or service.proc.poll() is not None:
        service.stop()
        service.env = original_env
        service.start()
        service.wait_ready(120)
    assert ENTRY_BAND in bot.ask_text(SALARY)


class HungServer:
    """Accepts connections on a port and never answers (a stuck action server)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.connections = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(10)
        for conn in self.connections:
            conn.close()


def test_action_server_down_gives_apology_and_next_message_works_once_back(bot, action_server):
    assert ENTRY_BAND in bot.ask_text(SALARY)
    action_server.stop()

    sender = new_sender()
    assert bot.ask_text(SALARY, sender) == APOLOGY
    # Replies that need no action server keep working meanwhile.
    assert "Gern geschehen" in bot.ask_text("danke dir!", sender)

    action_server.start()
    action_server.wait_ready(120)
    assert ENTRY_BAND in bot.ask_text(SALARY, sender)


def test_action_server_slower_than_timeout_gives_apology(bot, action_server):
    port = bot.stack.settings.action_server_port
    action_server.stop()
    hung = HungServer(port)
    try:
        sender = new_sender()
        # Waits ACTION_TIMEOUT_SECONDS (10 s by default), then apologises.
        assert bot.ask_text(SALARY, sender) == APOLOGY
    finally:
        hung.close()
    action_server.start()
    action_server.wait_ready(120)
    assert ENTRY_BAND in bot.ask_text(SALARY, sender)


@pytest.fixture
def outage_database() -> Iterator[str]:
    """A PostgreSQL database of its own with the knowledge base, dropped afterwards."""
    name = f"revierlotse_outage_{uuid.uuid4().hex[:10]}"
    admin = postgres_admin(f'CREATE DATABASE "{name}"', autocommit=True)
    url = POSTGRES_TEST_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            set_connections(conn, name, allowed=True)
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def set_connections(conn, database: str, allowed: bool) -> None:
    """Take a database down (refuse new connections, end open ones) or bring it back."""
    conn.execute(sa.text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}'))
    if not allowed:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                     {"d": database})


def test_database_down_gives_apology_and_recovers_without_restart(bot, action_server, outage_database):
    action_server.stop()
    action_server.env = {**action_server.env, "DATABASE_URL": outage_database}
    action_server.start()
    action_server.wait_ready(120)
    pid = action_server.proc.pid
    sender = new_sender()
    assert ENTRY_BAND in bot.ask_text(SALARY, sender)

    database = outage_database.rsplit("/", 1)[1]
    admin = sa.create_engine(POSTGRES_TEST_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as conn:
            set_connections(conn, database, allowed=False)
        assert bot.ask_text(SALARY, sender) == APOLOGY
        assert bot.ask_text("Welche Fähigkeiten brauche ich?", sender) == APOLOGY
        with admin.connect() as conn:
            set_connections(conn, database, allowed=True)
    finally:
        admin.dispose()

    assert ENTRY_BAND in bot.ask_text(SALARY, sender)
    assert action_server.proc.pid == pid and action_server.proc.poll() is None, "no restart needed"


def test_whole_database_down_gives_apology_and_both_servers_recover(model, outage_database):
    """Tracker store (Rasa server) and knowledge base (actions) in the same database."""
    stack = Stack.default(model, stack_overrides(outage_database), log_dir=ARTIFACTS / "logs" / "outage-db")
    database = outage_database.rsplit("/", 1)[1]
    admin = sa.create_engine(POSTGRES_TEST_URL, isolation_level="AUTOCOMMIT", future=True)
    with stack:
        bot = Bot(stack)
        pids = [service.proc.pid for service in stack.services]
        sender = new_sender()
        assert ENTRY_BAND in bot.ask_text(SALARY, sender)
        try:
            with admin.connect() as conn:
                set_connections(conn, database, allowed=False)
            assert bot.ask_text(SALARY, sender) == APOLOGY
            # Without its conversation store no turn is answered as if it were stored,
            # not even one that needs no knowledge (Rasa's in-memory fallback is off).
            assert bot.ask_text("danke dir!", new_sender()) == APOLOGY
            with admin.connect() as conn:
                set_connections(conn, database, allowed=True)
        finally:
            admin.dispose()
        assert ENTRY_BAND in bot.ask_text(SALARY, sender)
        assert "Gern geschehen" in bot.ask_text("danke dir!", sender)
        assert [service.proc.pid for service in stack.services] == pids
        assert all(service.proc.poll() is None for service in stack.services), "no restart needed"
        for service in stack.services:  # the database errors were logged without the user's text
            assert SALARY not in service.log_path.read_text(encoding="utf-8", errors="replace")
