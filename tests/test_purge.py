"""Retention (DSGVO): `make purge` deletes conversations older than RETENTION_DAYS, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from revierlotse.settings import PROJECT_ROOT
from revierlotse.stores.tracker_store import DatabaseTrackerStore
from tests.conftest import new_sender

DAY = 86400.0


def save_conversation(store: DatabaseTrackerStore, sender: str, texts, when: float) -> None:
    events = [ActionExecuted("action_listen", timestamp=when)]
    for offset, text in enumerate(texts):
        events += [UserUttered(text, timestamp=when + offset), BotUttered(f"Antwort auf {text}", timestamp=when + offset),
                   ActionExecuted("action_listen", timestamp=when + offset)]
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))


def test_purge_deletes_old_conversations_and_keeps_fresh_ones(database_url):
    store = DatabaseTrackerStore(domain=Domain.empty(), host=database_url)
    now = time.time()
    old = [new_sender() for _ in range(3)]
    fresh = [new_sender() for _ in range(2)]
    for sender in old:
        save_conversation(store, sender, ["Hallo", "Was verdient ein Einsteiger?"], now - 45 * DAY)
    save_conversation(store, fresh[0], ["Hallo"], now - 1 * DAY)
    # Started long ago but still active: kept whole.
    save_conversation(store, fresh[1], ["Hallo"], now - 60 * DAY)
    save_conversation(store, fresh[1], ["Hallo", "und jetzt?"], now - 2 * DAY)

    result = subprocess.run(
        [sys.executable, "-m", "revierlotse.purge"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": database_url, "RETENTION_DAYS": "30"}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 Unterhaltungen gelöscht"), result.stdout
    assert "30 Tagen" in result.stdout

    with store.engine.connect() as connection:
        remaining = {row[0] for row in connection.execute(sa.text("SELECT DISTINCT sender_id FROM events"))}
        oldest_kept = connection.execute(
            sa.text("SELECT MIN(timestamp) FROM events WHERE sender_id = :s"), {"s": fresh[1]}).scalar()
    store.engine.dispose()
    assert remaining == set(fresh)
    assert oldest_kept < now - 59 * DAY  # the active conversation kept its beginning


def test_purge_without_conversations_reports_zero(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "revierlotse.purge", "--database-url", url], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 Unterhaltungen gelöscht")
