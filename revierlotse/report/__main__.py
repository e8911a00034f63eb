"""`python -m revierlotse.report [--from YYYY-MM-DD] [--to YYYY-MM-DD]` (`make report`).

Reads the conversations from the tracker store in DATABASE_URL and writes
reports/report.html (charts embedded) and reports/report.json (the same figures as
data). With a date range the files are named report_<from>_<to>.*. An empty tracker
store is not an error: it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from revierlotse.report.conversations import NoConversations, open_engine, read_conversations, safe_url
from revierlotse.report.figures import ReportData, compute_report, fallback_threshold, topic_labels
from revierlotse.settings import PROJECT_ROOT, Settings, get_settings

DEFAULT_OUT_DIR = PROJECT_ROOT / "reports"


class ReportError(RuntimeError):
    """The report cannot be built (e.g. database unreachable); the message says why."""


def window(first_day: Optional[date], last_day: Optional[date], timezone: str) -> Tuple[Optional[float], Optional[float]]:
    """[start, end) in Unix seconds for whole local days first_day..last_day."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(first_day, time(), zone).timestamp() if first_day else None
    end = datetime.combine(last_day + timedelta(days=1), time(), zone).timestamp() if last_day else None
    return start, end


def load_report(settings: Settings, first_day: Optional[date] = None, last_day: Optional[date] = None) -> Optional[ReportData]:
    """The report's figures, or None when there is no conversation (in the range)."""
    try:
        engine = open_engine(settings.database_url)
    except NoConversations:
        return None
    try:
        start, end = window(first_day, last_day, settings.report_timezone)
        return compute_report(
            read_conversations(engine, start, end),
            labels=topic_labels(settings.database_url, settings.knowledge_dir),
            threshold=fallback_threshold(),
            timezone=settings.report_timezone,
            first_day=first_day,
            last_day=last_day,
        )
    except NoConversations:
        return None
    except SQLAlchemyError as exc:
        raise ReportError(
            f"Datenbank nicht lesbar / database not readable: {safe_url(settings.database_url)} "
            f"({exc.__class__.__name__})"
        ) from exc
    finally:
        engine.dispose()


def write_report(data: ReportData, out_dir: Path, name: str = "report") -> Path:
    """Write `<name>.html` and `<name>.json` into `out_dir`; returns the HTML path."""
    from revierlotse.report.render import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{name}.html"
    html_path.write_text(render_html(data, datetime.now()), encoding="utf-8")
    (out_dir / f"{name}.json").write_text(json.dumps(data.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    return html_path


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"kein Datum im Format JJJJ-MM-TT / not a YYYY-MM-DD date: {value!r}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m revierlotse.report", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first_day", type=_day, help="first day (YYYY-MM-DD), inclusive")
    parser.add_argument("--to", dest="last_day", type=_day, help="last day (YYYY-MM-DD), inclusive")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help=f"output folder (default {DEFAULT_OUT_DIR})")
    args = parser.parse_args(argv)
    # Library deprecation chatter (matplotlib/pyparsing) is noise for an operator.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.first_day and args.last_day and args.first_day > args.last_day:
        parser.error("FROM liegt nach TO / FROM is after TO")

    settings = get_settings()
    try:
        data = load_report(settings, args.first_day, args.last_day)
    except ReportError as exc:
        print(exc, file=sys.stderr)
        return 1
    if data is None:
        span = ""
        if args.first_day or args.last_day:
            span = f" ({args.first_day or '…'} – {args.last_day or '…'})"
        print(
            f"Keine Gespräche gefunden{span} in {safe_url(settings.database_url)} – kein Bericht erstellt.\n"
            f"No conversations found{span} – no report written."
        )
        return 0
    name = "report"
    if args.first_day or args.last_day:
        name = f"report_{args.first_day or 'start'}_{args.last_day or 'end'}"
    path = write_report(data, args.out, name)
    print(
        f"Bericht geschrieben / report written: {path}\n"
        f"  {data.conversations} Gespräche, {data.user_messages} Nachrichten, "
        f"{data.first_day} – {data.last_day}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
