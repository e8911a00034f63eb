"""`revierlotse-kb` / `python -m revierlotse.kb.cli`: load the knowledge source into DATABASE_URL."""

from __future__ import annotations

import argparse
import sys

from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.kb.source import KnowledgeSourceError
from revierlotse.settings import get_settings


def main(argv=None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Load the Revierlotse knowledge base.")
    parser.add_argument("--source", default=settings.knowledge_dir, help="YAML file or folder (default: %(default)s)")
    parser.add_argument("--database-url", default=settings.database_url, help="SQLAlchemy URL (default: DATABASE_URL)")
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url)
    try:
        result = load_knowledge(engine, args.source)
    except KnowledgeSourceError as exc:
        print(f"Knowledge source invalid, nothing loaded: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    state = "loaded" if result.changed else "unchanged"
    print(f"knowledge base {state}: {result.facts} facts ({result.content_hash[:12]}) into {engine.url!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
