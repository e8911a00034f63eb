"""Serving the contenders side by side and measuring them in alternating slices."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from revierlotse.bench.contenders import LOGS, Contender, without_patches
from revierlotse.bench.loadgen import LoadResult, Sample, run_load
from revierlotse.bench.procfs import cpu_seconds, rss_mb
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import free_port

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def knowledge_db(directory: Path) -> str:
    from revierlotse.kb.loader import load_knowledge
    from revierlotse.db import make_engine

    url = f"sqlite:///{directory / 'revierlotse.db'}"
    engine = make_engine(url)
    load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
    engine.dispose()
    return url


def first_reply_ms(url: str, text: str) -> float:
    """Latency of the very first message after ready (lazy loading shows up here)."""
    import urllib.request

    body = json.dumps({"sender": "bench-first", "message": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as resp:
        resp.read()
    return round((time.perf_counter() - started) * 1000.0, 1)


def redis_for_replicas() -> Optional[str]:
    """The Redis URL the replicas share (REDIS_URL, else the local default), if it answers."""
    import redis

    from revierlotse.settings import get_settings

    url = get_settings().redis_url or DEFAULT_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError):
        return None
    return url


def serving_plan(contender: Contender) -> Dict[str, Any]:
    """How `contender` is served: replicas, lock store, patches."""
    if not contender.our_serving:
        return {"replicas": 1, "patched": False, "locks": "in-process"}
    cores = os.cpu_count() or 1
    redis_url = redis_for_replicas() if cores > 1 else None
    if cores > 1 and not redis_url:
        print(f"{contender.label}: no Redis at {DEFAULT_REDIS_URL} (or REDIS_URL): one replica only",
              file=sys.stderr)
    replicas = cores if redis_url else 1
    return {"replicas": replicas, "patched": True, "locks": "redis" if redis_url else "in-process",
            "redis_url": redis_url or ""}


class Served:
    """A contender's stack, started, warmed up and measured for memory; `result` collects its figures."""

    def __init__(self, contender: Contender, model: Path, questions: Sequence[str], warmup_s: float,
                 bar, exits: contextlib.ExitStack) -> None:
        from revierlotse.stack import Stack

        self.contender = contender
        plan = serving_plan(contender)
        self.result: Dict[str, Any] = {"serving": {k: v for k, v in plan.items() if k != "redis_url"}}
        tmp = exits.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{contender.label}-"))
        overrides = {
            "DATABASE_URL": knowledge_db(Path(tmp)),
            "RASA_HOST": "127.0.0.1",
            "RASA_PORT": str(free_port()),
            "ACTION_SERVER_PORT": str(free_port()),
            "REDIS_URL": plan.get("redis_url", ""),
            "LOG_LEVEL": "INFO",
        }
        stack = Stack.default(model, overrides, log_dir=LOGS / contender.label,
                              replica_ports=[free_port() for _ in range(plan["replicas"] - 1)])
        if not plan["patched"]:
            without_patches(stack.service("rasa server"))
        bar.set_postfix_str(f"{contender.label}: starting servers")
        started = time.monotonic()
        exits.enter_context(stack)
        self.result["ready_s"] = round(time.monotonic() - started, 1)
        self.urls = [f"{base}/webhooks/rest/webhook" for base in stack.rasa_urls]
        self.result["first_reply_ms"] = first_reply_ms(self.urls[0], questions[0])
        bar.update(1)

        bar.set_postfix_str(f"{contender.label}: warm-up {warmup_s:.0f} s")
        warm = run_load(self.urls, questions, users=2 * len(self.urls), duration_s=warmup_s,
                        sender_prefix="bench-warmup")
        self.result["warmup"] = warm.summary()
        self.rasa_pids = [service.proc.pid for service in stack.rasa_services()]
        self.actions_pid = stack.service("action server").proc.pid
        self.result["rss_mb"] = self.memory()
        self.result["rss_mb"]["total"] = round(self.result["rss_mb"]["rasa"] + self.result["rss_mb"]["actions"], 1)
        self.result["levels"] = []
        bar.update(1)

    def memory(self) -> Dict[str, float]:
        return {"rasa": round(sum(rss_mb(pid) for pid in self.rasa_pids), 1), "actions": rss_mb(self.actions_pid)}

    def cpu(self) -> Tuple[float, float, float]:
        """CPU seconds so far: Rasa servers, action server, this process (the load generator)."""
        return sum(cpu_seconds(pid) for pid in self.rasa_pids), cpu_seconds(self.actions_pid), time.process_time()


def measure_levels(served: Sequence[Served], questions: Sequence[str], levels: Sequence[int],
                   duration_s: float, slices: int, bar) -> None:
    """Closed-loop load at each level, `duration_s` per contender, in `slices` turns that
    alternate between the contenders (A B C, C B A, ...): a machine whose speed drifts
    during the run then weighs on every contender alike, not on whichever came last."""
    for users in levels:
        loads: Dict[str, LoadResult] = {s.contender.label: LoadResult(users=users, duration_s=0.0) for s in served}
        cpu: Dict[str, List[float]] = {s.contender.label: [0.0, 0.0, 0.0] for s in served}
        for turn in range(slices):
            for one in (served if turn % 2 == 0 else list(reversed(served))):
                label = one.contender.label
                done = [len(loads[label].samples)]

                def progress(sample: Sample, label=label, done=done) -> None:
                    done[0] += 1
                    if done[0] % 10 == 0:
                        bar.set_postfix_str(f"{label}: {users} users, {done[0]} replies")

                before = one.cpu()
                load = run_load(one.urls, questions, users=users, duration_s=duration_s / slices,
                                sender_prefix=f"bench-{users}u-s{turn}", on_reply=progress)
                after = one.cpu()
                cpu[label] = [total + (b - a) for total, a, b in zip(cpu[label], before, after)]
                loads[label].samples.extend(load.samples)
                loads[label].duration_s += load.duration_s
        for one in served:
            label = one.contender.label
            summary = loads[label].summary()
            replies = max(summary["ok"], 1)
            rasa, actions, generator = (round(1000.0 * seconds / replies, 1) for seconds in cpu[label])
            # the load generator (this process) shares the cores with the servers
            summary["cpu_ms_per_msg"] = {"rasa": rasa, "actions": actions, "load_generator": generator}
            summary["slices"] = slices
            summary["loadavg_after"] = os.getloadavg()
            one.result["levels"].append(summary)
            bar.update(1)
    for one in served:
        one.result["rss_mb_after_load"] = one.memory()
