"""What happens around every turn, whatever the channel (installed by revierlotse.rasa36).

- `TurnGate.handle` wraps Rasa's `Agent.handle_message`: per-sender rate limit, empty
  and over-long text answered with a friendly German reply instead of a turn, any
  failure answered with the apology instead of silence, and one INFO line per turn.
- `run_remote_action` wraps `RemoteAction.run`: an action server that is down, broken
  or slower than ACTION_TIMEOUT_SECONDS yields the apology as a bot message.
- `TrackerStoreUnavailable` is what the tracker store raises (through
  `revierlotse.rasa36`) when it cannot load or save a conversation: the turn ends with
  the apology alone (nothing it had collected), one ERROR line and outcome=not_stored.

The INFO line names channel, a short hash of the sender, intent, confidence, actions,
outcome and latency; never the message text (that appears at DEBUG only):

    turn channel=rest sender=3f2a9c01d4 intent=ask_salary confidence=0.91
         actions=action_answer_topic outcome=ok latency_ms=48
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, List, Optional

from revierlotse import notices
from revierlotse.replies import apology_text
from revierlotse.ratelimit import RateLimiter
from revierlotse.settings import Settings

logger = logging.getLogger("revierlotse.turns")
IGNORED_ACTIONS = {"action_listen", "action_extract_slots", "action_session_start"}


@dataclass
class TurnRecord:
    channel: str
    sender: str
    started: float = field(default_factory=time.perf_counter)
    outcome: str = "ok"
    intent: Optional[str] = None
    confidence: Optional[float] = None
    actions: List[str] = field(default_factory=list)
    failed_actions: List[str] = field(default_factory=list)

    def line(self) -> str:
        latency_ms = (time.perf_counter() - self.started) * 1000
        confidence = "-" if self.confidence is None else f"{self.confidence:.2f}"
        actions = ",".join(self.actions) or "-"
        failed = f" failed={','.join(self.failed_actions)}" if self.failed_actions else ""
        return (f"turn channel={self.channel} sender={self.sender} intent={self.intent or '-'} "
                f"confidence={confidence} actions={actions} outcome={self.outcome}{failed} "
                f"latency_ms={latency_ms:.0f}")


_current: ContextVar[Optional[TurnRecord]] = ContextVar("revierlotse_turn", default=None)


class TrackerStoreUnavailable(RuntimeError):
    """The tracker store could not load or save a conversation (e.g. the database is down).

    The message names the operation and the error's type only: database errors may
    quote the statement and with it the user's text.
    """

    def __init__(self, operation: str, error: BaseException) -> None:
        self.operation = operation
        self.error_type = type(error).__name__
        super().__init__(f"the tracker store could not {operation} the conversation ({self.error_type})")


def sender_tag(sender_id: Any) -> str:
    """A short, stable pseudonym for a sender id, so log lines of one user correlate."""
    return hashlib.sha256(str(sender_id).encode("utf-8", "replace")).hexdigest()[:10]


def record_tracker(tracker: Any) -> None:
    """Copy intent, confidence and this turn's actions from `tracker` into the turn record."""
    record = _current.get()
    if record is None or tracker is None:
        return
    from rasa.shared.core.events import ActionExecuted, UserUttered

    intent = (tracker.latest_message.intent or {}) if tracker.latest_message else {}
    record.intent = intent.get("name")
    record.confidence = intent.get("confidence")
    actions = []
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, ActionExecuted) and event.action_name not in IGNORED_ACTIONS:
            actions.append(event.action_name)
    record.actions = actions[::-1]


class TurnGate:
    """Everything Revierlotse does before and after Rasa handles one message."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.max_chars = settings.max_message_chars
        self.knowledge_dir = settings.knowledge_dir

    def refusal(self, text: Optional[str], sender_id: str) -> Optional[tuple]:
        """(outcome, reply) when this message gets a fixed reply instead of a turn."""
        if not self.limiter.allow(sender_id):
            return "rate_limited", notices.RATE_LIMITED
        if not isinstance(text, str) or not text.strip():
            return "empty", notices.EMPTY_MESSAGE
        if len(text) > self.max_chars:
            return "too_long", notices.MESSAGE_TOO_LONG.format(max_chars=self.max_chars)
        return None

    async def handle(self, handle_message: Callable[..., Awaitable[Any]], agent: Any, message: Any) -> Any:
        channel = message.input_channel or message.output_channel.name()
        record = TurnRecord(channel=channel, sender=sender_tag(message.sender_id))
        token = _current.set(record)
        try:
            refusal = self.refusal(message.text, message.sender_id)
            if refusal is not None:
                record.outcome, reply = refusal
                await message.output_channel.send_text_message(message.sender_id, reply)
                return _collected(message)
            logger.debug("turn text sender=%s text=%r", record.sender, message.text)
            try:
                result = await handle_message(agent, message)
            except asyncio.CancelledError:
                record.outcome = "cancelled"
                raise
            except TrackerStoreUnavailable as exc:
                # Nothing of this turn is stored: the user gets the apology instead of
                # what the turn had collected, the operator one line (no traceback).
                record.outcome = "not_stored"
                logger.error("turn not stored: %s; sender=%s got the apology", exc, record.sender)
                if isinstance(_collected(message), list):
                    message.output_channel.messages.clear()
                await message.output_channel.send_text_message(message.sender_id, apology_text(self.knowledge_dir))
                return _collected(message)
            except Exception as exc:  # noqa: BLE001 - the user gets an apology, never silence
                record.outcome = "error"
                # Frames only: exception messages may quote the tracker (user text).
                logger.error("turn failed with %s; traceback (most recent call last):\n%s",
                             type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)))
                logger.debug("turn failure details", exc_info=True)
                await message.output_channel.send_text_message(message.sender_id, apology_text(self.knowledge_dir))
                return _collected(message)
            if record.failed_actions:
                record.outcome = "apologised"
            return result
        finally:
            logger.info(record.line())
            _current.reset(token)


def _collected(message: Any) -> Any:
    from rasa.core.channels.channel import CollectingOutputChannel

    channel = message.output_channel
    return channel.messages if isinstance(channel, CollectingOutputChannel) else None


async def run_remote_action(run: Callable[..., Awaitable[list]], action: Any, output_channel: Any, nlg: Any,
                            tracker: Any, domain: Any, timeout: float, knowledge_dir: str) -> list:
    """Run a custom action; if it fails or times out, the result is the apology."""
    from rasa.core.actions.action import ActionExecutionRejection, create_bot_utterance

    try:
        return await asyncio.wait_for(run(action, output_channel, nlg, tracker, domain), timeout)
    except ActionExecutionRejection:
        raise
    except asyncio.TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - connection refused, 5xx, invalid response ...
        from rasa.shared.exceptions import RasaException

        # Rasa's own messages name the action and URL; others (e.g. a schema error
        # quoting the response) may carry user data, so only their type is logged.
        reason = f"{type(exc).__name__}: {exc}" if type(exc) is RasaException else type(exc).__name__
    logger.warning("action %s failed (%s); the user gets the apology", action.name(), reason)
    record = _current.get()
    if record is not None:
        record.failed_actions.append(action.name())
    return [create_bot_utterance({"text": apology_text(knowledge_dir)})]
