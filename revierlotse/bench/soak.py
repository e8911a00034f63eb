"""Soak test of the hardened REST channel: N users for T seconds, zero errors expected.

    .venv/bin/python -m revierlotse.bench.soak --questions tests/nlu/heldout.yml [--users 20] [--seconds 120]

Starts its own stack (free ports, a fresh SQLite database, default settings otherwise),
runs the closed-loop load generator with the given German questions, and counts as
an error anything but HTTP 200 with a non-empty reply that is neither the apology nor
the rate-limit notice. Prints the figures as JSON; exits 1 on any error. Not part of
`make test` (it runs for minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from revierlotse import notices
from revierlotse.bench.loadgen import run_load
from revierlotse.bench.questions import add_questions_argument, read_questions
from revierlotse.bench.serving import knowledge_db
from revierlotse.replies import apology_text
from revierlotse.model import ensure_model
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import Stack, free_port

KNOWLEDGE = PROJECT_ROOT / "data" / "knowledge"


def proper_answer(status: int, body: Any) -> bool:
    if status != 200 or not isinstance(body, list) or not body:
        return False
    texts = [m.get("text", "") for m in body if isinstance(m, dict)]
    return any(texts) and not {apology_text(KNOWLEDGE), notices.RATE_LIMITED, notices.EMPTY_MESSAGE} & set(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0)
    add_questions_argument(parser)
    args = parser.parse_args()
    questions = read_questions(args.questions)

    with tempfile.TemporaryDirectory(prefix="revierlotse-soak-") as tmp:
        url = knowledge_db(Path(tmp))
        overrides = {"DATABASE_URL": url, "RASA_HOST": "127.0.0.1", "RASA_PORT": str(free_port()),
                     "ACTION_SERVER_PORT": str(free_port()), "LOG_LEVEL": "INFO"}
        log_dir = PROJECT_ROOT / "artifacts" / "soak"
        with Stack.default(ensure_model(), overrides, log_dir=log_dir) as stack:
            webhook = f"{stack.rasa_url}/webhooks/rest/webhook"
            run_load(webhook, questions[:20], users=2, duration_s=5)  # warm-up
            result = run_load(webhook, questions, users=args.users, duration_s=args.seconds,
                              sender_prefix="soak", check=proper_answer)
    summary = result.summary()
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    sys.exit(1 if summary["errors"] else 0)


if __name__ == "__main__":
    main()
