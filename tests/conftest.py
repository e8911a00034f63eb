"""Shared fixtures: the trained model, a loaded knowledge base, a running bot.

Servers get free ports, so tests can run while `make run` is up, and every stack
writes its logs under artifacts/logs/ (git-ignored) for post-mortems.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.model import ensure_model
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack, free_port  # noqa: F401 - free_port: tests import it from here

ARTIFACTS = PROJECT_ROOT / "artifacts"
# Held-out NLU examples, written by people who had not seen the training data.
HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"


def heldout_questions() -> List[str]:
    """The held-out examples as plain question texts."""
    from revierlotse.bench.questions import read_questions

    return read_questions(HELDOUT)


def stack_overrides(database_url: str, **extra: str) -> Dict[str, str]:
    """Environment for a test stack: free ports, the given database, no .env surprises."""
    return {
        "DATABASE_URL": database_url,
        "RASA_HOST": "127.0.0.1",
        "RASA_PORT": str(free_port()),
        "ACTION_SERVER_PORT": str(free_port()),
        "LOG_LEVEL": "INFO",
        **extra,
    }


def post_json(url: str, payload, timeout: float = 60.0):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


class Bot:
    """A running Revierlotse reached over the REST channel."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.url = stack.rasa_url

    def ask(self, text: str, sender: Optional[str] = None) -> List[dict]:
        return post_json(f"{self.url}/webhooks/rest/webhook", {"sender": sender or new_sender(), "message": text})

    def ask_text(self, text: str, sender: Optional[str] = None) -> str:
        return "\n".join(m.get("text", "") for m in self.ask(text, sender))


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


# The real services the test machines run (PostgreSQL, Redis); tests skip, naming the
# reason, only when a service is not reachable at all.
POSTGRES_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_TEST_URL = "redis://127.0.0.1:6379/0"


def postgres_admin(create_statement: str, autocommit: bool = False):
    """An engine on the test PostgreSQL after running `create_statement` (CREATE SCHEMA,
    CREATE DATABASE ...); skips the test, naming why, when PostgreSQL is not reachable."""
    import sqlalchemy as sa

    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    admin = sa.create_engine(POSTGRES_TEST_URL, connect_args={"connect_timeout": 3}, future=True, **options)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(create_statement))
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_TEST_URL}: {error.orig}")
    return admin


@pytest.fixture
def postgres_url():
    """A fresh schema in the test PostgreSQL (via search_path), dropped afterwards.

    Knowledge base and conversations both land in it, so parallel runs never meet.
    """
    import sqlalchemy as sa

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = postgres_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_TEST_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each storage test runs on the embedded default and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'revierlotse.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url() -> str:
    """The test Redis (tests use unique keys and delete them)."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.skip(f"Redis not reachable at {REDIS_TEST_URL}: {error}")
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture(scope="session")
def model() -> Path:
    return ensure_model()


@pytest.fixture(scope="session")
def kb_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('kb') / 'revierlotse.db'}"
    engine = make_engine(url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def bot_with_speedups(model, kb_url) -> Bot:
    """The real action server and Rasa server (RASA_SPEEDUPS on, the default)."""
    stack = Stack.default(model, stack_overrides(kb_url), log_dir=ARTIFACTS / "logs" / "session")
    with stack:
        yield Bot(stack)


@pytest.fixture(scope="session")
def bot(bot_with_speedups) -> Bot:
    """The running bot shared by the end-to-end tests."""
    return bot_with_speedups


@pytest.fixture(scope="session")
def bot_without_speedups(model, kb_url) -> Bot:
    """Like `bot`, with RASA_SPEEDUPS=false: Rasa with the behaviour patches only."""
    stack = Stack.default(model, stack_overrides(kb_url, RASA_SPEEDUPS="false"),
                          log_dir=ARTIFACTS / "logs" / "without-speedups")
    with stack:
        yield Bot(stack)
