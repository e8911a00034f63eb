"""Operator report: what people ask and what the bot could not answer.

    conversations.py  read Rasa's tracker store (table `events`) into plain objects,
                      dropping sender ids on the way in
    figures.py        compute every figure of the report as plain data (`ReportData`)
    unanswered.py     mask personal data in user text, group similar questions
    render.py         PNG charts (matplotlib) embedded in one self-contained HTML file
    __main__.py       `python -m revierlotse.report [--from DAY] [--to DAY]` (`make report`)

Nothing here needs a running bot; it reads the database behind DATABASE_URL.
"""

from revierlotse.report.conversations import Conversation, Message, read_conversations
from revierlotse.report.figures import ReportData, compute_report

__all__ = ["Conversation", "Message", "ReportData", "compute_report", "read_conversations"]
