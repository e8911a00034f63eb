"""What the tracker store really holds: rows of the `events` table, read with plain SQL."""

from __future__ import annotations

import json
from typing import List, Tuple

import sqlalchemy as sa

from revierlotse.db import make_engine


def stored_events(database_url: str, sender_id: str) -> List[Tuple[str, dict]]:
    """(type_name, event data) of every stored row of `sender_id`, in order."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT type_name, data FROM events WHERE sender_id = :sender ORDER BY id"),
                {"sender": sender_id},
            ).all()
    finally:
        engine.dispose()
    return [(type_name, json.loads(data)) for type_name, data in rows]


def user_texts(database_url: str, sender_id: str) -> List[str]:
    return [data.get("text") for kind, data in stored_events(database_url, sender_id) if kind == "user"]


def slot_values(database_url: str, sender_id: str, slot: str) -> list:
    """Every value the stored events set `slot` to, in order."""
    return [data.get("value") for kind, data in stored_events(database_url, sender_id)
            if kind == "slot" and data.get("name") == slot]
