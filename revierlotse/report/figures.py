"""Every figure of the operator report, computed as plain data from conversations.

Definitions (they are also explained in the report itself):
- conversation: one conversation session with at least one user message, counted on
  the day of its first user message; messages are counted on their own day.
- channel: Rasa's input channel of a conversation's first user message
  (`socketio` = Web, `telegram` = Telegram, `rest` / `cmdline` = Shell/REST).
- topic: a user message whose intent is `ask_<topic>` for a topic of the knowledge
  base (and not below the fallback threshold); labelled with the knowledge base's label.
- not understood: intent `nlu_fallback`, or any intent with a confidence below the
  FallbackClassifier threshold of config.yml; out of scope: intent `out_of_scope`.
- conversation length: user messages per conversation, and minutes from its first to
  its last message.
- ratings: the 👍/👎 under fact answers, counted on the day they were given; a second
  rating of the same answer replaces the first. Satisfaction of a topic is the share of
  👍 among its ratings. The line a user wrote after a 👎 is its comment, not a question:
  it counts as a message but not as a topic question or as not understood.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Dict, Iterable, List, Optional
from zoneinfo import ZoneInfo

import yaml

from revierlotse.intents import BUTTON_INTENT, topic_of_intent
from revierlotse.report.conversations import HELPFUL, UNHELPFUL, Conversation, Message, Rating
from revierlotse.report.unanswered import QuestionGroup, group_questions, mask_personal_data
from revierlotse.settings import PROJECT_ROOT

FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"
NOT_UNDERSTOOD, OUT_OF_SCOPE, LOW_CONFIDENCE = "fallback", "out_of_scope", "low_confidence"
# Rasa's FallbackClassifier default, used when config.yml names no threshold.
DEFAULT_FALLBACK_THRESHOLD = 0.3

NO_TOPIC_LABEL = "ohne Thema"

WEB, TELEGRAM, SHELL_REST, OTHER = "Web", "Telegram", "Shell/REST", "Sonstige"
CHANNEL_LABELS = {"socketio": WEB, "telegram": TELEGRAM, "rest": SHELL_REST, "cmdline": SHELL_REST}
CHANNEL_ORDER = (WEB, TELEGRAM, SHELL_REST, OTHER)


class _Rates:
    """Shares of user messages, for figures with user_messages, not_understood, out_of_scope."""

    @property
    def not_understood_rate(self) -> float:
        return _rate(self.not_understood, self.user_messages)

    @property
    def out_of_scope_rate(self) -> float:
        return _rate(self.out_of_scope, self.user_messages)


@dataclass
class DayFigures(_Rates):
    day: str  # ISO date in the report's time zone
    conversations: int = 0
    user_messages: int = 0
    bot_messages: int = 0
    not_understood: int = 0
    out_of_scope: int = 0



@dataclass
class Share:
    key: str
    label: str
    count: int
    share: float  # 0..1


@dataclass
class TopicSatisfaction:
    """👍 and 👎 on the answers of one topic (key "" for answers without a topic)."""

    key: str
    label: str
    helpful: int = 0
    unhelpful: int = 0

    @property
    def ratings(self) -> int:
        return self.helpful + self.unhelpful

    @property
    def helpful_rate(self) -> float:
        return _rate(self.helpful, self.ratings)


@dataclass
class UnhelpfulAnswer:
    """An answer rated 👎: the question it replied to and the comment, both masked."""

    day: str
    topic: str
    label: str
    question: str
    facts: List[str] = field(default_factory=list)
    comment: Optional[str] = None


@dataclass
class ReportData(_Rates):
    """The whole report as plain data; `render` turns it into HTML, tests read it."""

    first_day: str
    last_day: str
    timezone: str
    fallback_threshold: float
    conversations: int
    user_messages: int
    bot_messages: int
    avg_user_messages: float
    avg_duration_minutes: float
    not_understood: int
    out_of_scope: int
    days: List[DayFigures] = field(default_factory=list)
    channels: List[Share] = field(default_factory=list)
    topics: List[Share] = field(default_factory=list)
    unanswered: List[QuestionGroup] = field(default_factory=list)
    satisfaction: List[TopicSatisfaction] = field(default_factory=list)
    unhelpful_answers: List[UnhelpfulAnswer] = field(default_factory=list)  # newest first

    @property
    def helpful(self) -> int:
        return sum(t.helpful for t in self.satisfaction)

    @property
    def unhelpful(self) -> int:
        return sum(t.unhelpful for t in self.satisfaction)

    @property
    def helpful_rate(self) -> float:
        return _rate(self.helpful, self.helpful + self.unhelpful)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["not_understood_rate"] = self.not_understood_rate
        data["out_of_scope_rate"] = self.out_of_scope_rate
        data["helpful"], data["unhelpful"], data["helpful_rate"] = self.helpful, self.unhelpful, self.helpful_rate
        for topic, figures in zip(data["satisfaction"], self.satisfaction):
            topic["helpful_rate"] = figures.helpful_rate
        for day, figures in zip(data["days"], self.days):
            day["not_understood_rate"] = figures.not_understood_rate
            day["out_of_scope_rate"] = figures.out_of_scope_rate
        return data


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def fallback_threshold(config_path: Path = PROJECT_ROOT / "config.yml") -> float:
    """The FallbackClassifier threshold of the NLU pipeline (config.yml is the one place)."""
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    for component in config.get("pipeline") or []:
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", DEFAULT_FALLBACK_THRESHOLD))
    return DEFAULT_FALLBACK_THRESHOLD


def topic_labels(database_url: str, knowledge_dir: str) -> Dict[str, str]:
    """Topic key -> German label: from the loaded knowledge base, else from its YAML source."""
    from revierlotse.kb import KnowledgeBase, KnowledgeUnavailable
    from revierlotse.kb.source import read_source

    try:
        return dict(KnowledgeBase.from_url(database_url).topics())
    except KnowledgeUnavailable:
        return {t["key"]: t["label"] for t in read_source(knowledge_dir).topics}


def unanswered_reason(message: Message, threshold: float) -> Optional[str]:
    """Why the bot could not answer this user message, or None if it could."""
    if message.intent == OUT_OF_SCOPE_INTENT:
        return OUT_OF_SCOPE
    if message.intent == FALLBACK_INTENT:
        return NOT_UNDERSTOOD
    if message.confidence is not None and message.confidence < threshold:
        return LOW_CONFIDENCE
    return None


def question_label(text: Optional[str], labels: Dict[str, str]) -> str:
    """How a rated answer's question is shown: masked text, or the topic button pressed."""
    if not text:
        return "(Frage nicht gespeichert)"
    payload = text.strip()
    if payload.startswith("/") and BUTTON_INTENT.fullmatch(payload[1:]):
        topic = topic_of_intent(payload[1:])
        return f"Button „{labels.get(topic, payload)}“"
    return mask_personal_data(" ".join(text.split()))


def _satisfaction(ratings: List[Rating], labels: Dict[str, str]) -> List[TopicSatisfaction]:
    topics: Dict[str, TopicSatisfaction] = {}
    for rating in ratings:
        key = rating.topic if rating.topic in labels else ""
        figures = topics.setdefault(key, TopicSatisfaction(key, labels.get(key, NO_TOPIC_LABEL)))
        if rating.rating == HELPFUL:
            figures.helpful += 1
        elif rating.rating == UNHELPFUL:
            figures.unhelpful += 1
    return sorted(topics.values(), key=lambda t: (-t.ratings, t.key == "", t.label))


def _shares(counts: Counter, labels: Dict[str, str], order: Iterable[str] = ()) -> List[Share]:
    total = sum(counts.values())
    rank = {key: i for i, key in enumerate(order)}
    keys = sorted(counts, key=lambda k: (rank.get(k, len(rank)), -counts[k], k))
    return [Share(key, labels.get(key, key), counts[key], _rate(counts[key], total)) for key in keys]


def compute_report(
    conversations: Iterable[Conversation],
    labels: Dict[str, str],
    threshold: float,
    timezone: str = "Europe/Berlin",
    first_day: Optional[date] = None,
    last_day: Optional[date] = None,
) -> Optional[ReportData]:
    """All figures for `conversations`; None when there is no user message at all.

    `first_day`/`last_day` (the requested range) widen the per-day series so days
    without any conversation show as zero.
    """
    zone = ZoneInfo(timezone)

    def day_of(timestamp: float) -> date:
        return datetime.fromtimestamp(timestamp, zone).date()

    days: Dict[date, DayFigures] = {}

    def figures_for(day: date) -> DayFigures:
        return days.setdefault(day, DayFigures(day.isoformat()))

    channels: Counter = Counter()
    topics: Counter = Counter()
    lengths: List[int] = []
    durations: List[float] = []
    unanswered = []
    ratings: List[Rating] = []
    for conversation in conversations:
        ratings += conversation.ratings
        users = conversation.user_messages
        if not users:
            continue
        figures_for(day_of(users[0].timestamp)).conversations += 1
        channels[CHANNEL_LABELS.get(conversation.channel or "", OTHER)] += 1
        lengths.append(len(users))
        durations.append((conversation.messages[-1].timestamp - conversation.messages[0].timestamp) / 60)
        for message in conversation.messages:
            day = figures_for(day_of(message.timestamp))
            if not message.from_user:
                day.bot_messages += 1
                continue
            day.user_messages += 1
            if message.is_feedback_comment:
                continue
            reason = unanswered_reason(message, threshold)
            if reason is None:
                topic = topic_of_intent(message.intent)
                if topic in labels:
                    topics[topic] += 1
                continue
            if reason == OUT_OF_SCOPE:
                day.out_of_scope += 1
            else:
                day.not_understood += 1
            unanswered.append((message.text, reason))

    if not lengths:
        return None
    start, end = first_day or min(days), last_day or max(days)
    series = [figures_for(start + timedelta(n)) for n in range((end - start).days + 1)]
    return ReportData(
        first_day=start.isoformat(),
        last_day=end.isoformat(),
        timezone=timezone,
        fallback_threshold=threshold,
        conversations=len(lengths),
        user_messages=sum(d.user_messages for d in days.values()),
        bot_messages=sum(d.bot_messages for d in days.values()),
        avg_user_messages=mean(lengths),
        avg_duration_minutes=mean(durations),
        not_understood=sum(d.not_understood for d in days.values()),
        out_of_scope=sum(d.out_of_scope for d in days.values()),
        days=series,
        channels=_shares(channels, {c: c for c in CHANNEL_ORDER}, CHANNEL_ORDER),
        topics=sorted(_shares(topics, labels), key=lambda s: (-s.count, s.label)),
        unanswered=group_questions(unanswered),
        satisfaction=_satisfaction(ratings, labels),
        unhelpful_answers=[
            UnhelpfulAnswer(
                day=day_of(r.timestamp).isoformat(),
                topic=r.topic if r.topic in labels else "",
                label=labels.get(r.topic or "", NO_TOPIC_LABEL),
                question=question_label(r.question, labels),
                facts=list(r.facts),
                comment=mask_personal_data(" ".join(r.comment.split())) if r.comment else None,
            )
            for r in sorted(ratings, key=lambda r: -r.timestamp)
            if r.rating == UNHELPFUL
        ],
    )
