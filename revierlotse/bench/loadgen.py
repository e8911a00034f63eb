"""A closed-loop HTTP load generator for the REST channel (or any JSON POST endpoint).

    from revierlotse.bench.loadgen import run_load
    result = run_load("http://127.0.0.1:5005/webhooks/rest/webhook", questions, users=20, duration_s=20)
    print(result.summary())           # requests, errors, msg/s, p50/p95/p99 in ms

Closed loop: each of `users` virtual users sends one message, waits for the reply, and
sends the next one at once, until `duration_s` has passed (requests still in flight
then are completed and counted). Every virtual user talks under its own sender id; it
starts a fresh conversation (new sender id) every `turns_per_conversation` messages, as
real chats are short and Rasa's tracker handling grows with the conversation.

`check(status, body)` decides whether a reply counts as a success; the default wants
HTTP 200 and a non-empty JSON list (the bot said something).

`url` may also be a list of URLs (replicas of one bot): user i always talks to
url[i % len(url)], as a sticky load balancer would spread them.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import aiohttp

Check = Callable[[int, Any], bool]


def replied(status: int, body: Any) -> bool:
    """Default success check for the REST channel: 200 and at least one bot message."""
    return status == 200 and isinstance(body, list) and len(body) > 0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Sample:
    started: float  # seconds since the run began
    latency: float  # seconds
    ok: bool
    error: str = ""


@dataclass
class LoadResult:
    users: int
    duration_s: float  # wall time from the first request to the last reply
    samples: List[Sample] = field(default_factory=list)

    @property
    def ok_latencies_ms(self) -> List[float]:
        return [s.latency * 1000.0 for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    def summary(self) -> Dict[str, Any]:
        lat = self.ok_latencies_ms
        ok = len(lat)
        error_kinds: Dict[str, int] = {}
        for s in self.samples:
            if not s.ok:
                error_kinds[s.error] = error_kinds.get(s.error, 0) + 1
        return {
            "users": self.users,
            "duration_s": round(self.duration_s, 3),
            "requests": len(self.samples),
            "ok": ok,
            "errors": self.errors,
            "error_kinds": error_kinds,
            "throughput_msg_s": round(ok / self.duration_s, 2) if self.duration_s > 0 else 0.0,
            "mean_ms": round(sum(lat) / ok, 1) if ok else math.nan,
            "p50_ms": round(percentile(lat, 50), 1),
            "p95_ms": round(percentile(lat, 95), 1),
            "p99_ms": round(percentile(lat, 99), 1),
            "max_ms": round(max(lat), 1) if lat else math.nan,
        }


async def closed_loop(
    url: Union[str, Sequence[str]],
    messages: Sequence[str],
    users: int,
    duration_s: float,
    *,
    sender_prefix: str = "load",
    turns_per_conversation: Optional[int] = 10,
    timeout_s: float = 30.0,
    check: Check = replied,
    on_reply: Optional[Callable[[Sample], None]] = None,
    session: Optional[aiohttp.ClientSession] = None,
) -> LoadResult:
    """Run `users` closed-loop virtual users against `url` for `duration_s` seconds."""
    if users < 1 or not messages:
        raise ValueError("need at least one user and one message")
    urls = [url] if isinstance(url, str) else list(url)
    run_id = uuid.uuid4().hex[:8]
    own_session = session is None
    if own_session:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=users, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
    samples: List[Sample] = []
    t0 = time.perf_counter()
    deadline = t0 + duration_s

    async def virtual_user(index: int) -> None:
        target = urls[index % len(urls)]
        turn = 0
        conversation = 0
        # Users start at different places in the message list, so the mix is spread.
        position = index * max(1, len(messages) // users)
        while time.perf_counter() < deadline:
            if turns_per_conversation and turn and turn % turns_per_conversation == 0:
                conversation += 1
            sender = f"{sender_prefix}-{run_id}-u{index}-c{conversation}"
            text = messages[position % len(messages)]
            position += 1
            turn += 1
            started = time.perf_counter()
            try:
                async with session.post(target, json={"sender": sender, "message": text}) as resp:
                    body = await resp.json(content_type=None)
                    ok, error = check(resp.status, body), ("" if resp.status == 200 else f"HTTP {resp.status}")
                    if not ok and not error:
                        error = "rejected by check"
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                ok, error = False, type(exc).__name__
            sample = Sample(started - t0, time.perf_counter() - started, ok, error)
            samples.append(sample)
            if on_reply is not None:
                on_reply(sample)

    try:
        await asyncio.gather(*(virtual_user(i) for i in range(users)))
    finally:
        if own_session:
            await session.close()
    return LoadResult(users=users, duration_s=time.perf_counter() - t0, samples=samples)


def run_load(url: Union[str, Sequence[str]], messages: Sequence[str], users: int, duration_s: float, **kwargs: Any) -> LoadResult:
    """Synchronous wrapper around `closed_loop` (runs its own event loop)."""
    return asyncio.run(closed_loop(url, messages, users, duration_s, **kwargs))
