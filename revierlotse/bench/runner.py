"""`make bench`: Revierlotse (config.yml) against Rasa's stock configuration, in one run.

Three contenders, each on a stack of its own (action server + Rasa on free ports, its own
SQLite knowledge base and tracker store, the same endpoints.yml):

- revierlotse: our config, served the way we deploy it: Rasa with revierlotse's patches,
  one Rasa replica per CPU core, Redis locks, users spread over the replicas by sender
  (sticky, as the nginx proxy of docker-compose.yml does);
- stock: `rasa init`'s config on Rasa 3.6.21 as shipped: no patches, one process;
- stock-our-serving: the same stock model served like revierlotse, to tell what the
  configuration does from what the serving does.

Per configuration: a fresh training (empty Rasa cache, timed; the stock model is trained
once for both stock contenders), before any server runs. Per contender: the time from
process start to ready, the first reply, resident memory after a warm-up, and REST
latency (p50/p95/p99), throughput and CPU per reply (Rasa, action server, load
generator) for closed-loop users at each concurrency level, with German questions from
the held-out NLU set. All contenders are up at once and each level is measured in
slices that alternate between them (A B C, C B A, ...), because this machine's speed
drifts by tens of percent within minutes: measured one after another, the contender
that came last took the drift alone.

Writes results/bench-<time>.json, results/bench-<time>.png and results/bench-latest.*
(JSON, PNG, Markdown table), prints the comparison table and the target check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import yaml

from revierlotse.bench.loadgen import LoadResult, Sample, run_load
from revierlotse.settings import PROJECT_ROOT

HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
STOCK_CONFIG = "revierlotse/bench/stock-config.yml"
RESULTS = PROJECT_ROOT / "results"
LOGS = PROJECT_ROOT / "artifacts" / "bench"

# Performance targets (docs/performance.md), for a 2-core machine.
TARGET_P95_MS_AT_10 = 150.0
TARGET_THROUGHPUT_FACTOR_AT_10 = 2.0
TARGET_TRAINING_S = 60.0
TARGET_READY_S = 25.0


@dataclass(frozen=True)
class Contender:
    label: str  # key in the results
    config: str  # config path relative to the project root
    our_serving: bool  # rasa36 patches + one replica per core (Redis locks); else Rasa as shipped
    title: str  # column header


CONTENDERS = (
    Contender("revierlotse", "config.yml", True, "revierlotse"),
    Contender("stock", STOCK_CONFIG, False, "stock (Rasa as shipped)"),
    Contender("stock-our-serving", STOCK_CONFIG, True, "stock config, our serving"),
)
BASELINES = ("stock", "stock-our-serving")  # ratios: revierlotse against each

# `python -m revierlotse.launch rasa ...` without revierlotse.rasa36: Rasa as shipped.
UNPATCHED_RASA = (
    "import sys; from revierlotse.launch import export_environment; export_environment(); "
    "from rasa.__main__ import main; sys.argv = ['rasa', *sys.argv[1:]]; main()"
)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def without_patches(rasa) -> None:
    """Make a Rasa server `Service` run Rasa as shipped (no revierlotse.rasa36)."""
    rasa.argv = [rasa.argv[0], "-c", UNPATCHED_RASA, *rasa.argv[rasa.argv.index("rasa") + 1:]]

_ANNOTATION = re.compile(r"\[([^\]]+)\](\{[^}]*\}|\([^)]*\))")


def heldout_questions(path: Path = HELDOUT) -> List[str]:
    """Plain texts of the held-out NLU examples (entity annotations removed)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    texts = []
    for block in data.get("nlu", []):
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                texts.append(_ANNOTATION.sub(r"\1", line[2:]).strip())
    return [t for t in texts if t]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- resident memory from /proc (Linux) -------------------------------------------------

def _children(pid: int) -> List[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the command name in parentheses, which may contain spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _tree(pid: int) -> List[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process and its descendants.

    Unlike wall-clock latency, CPU time per message hardly depends on what else runs on
    the machine, so it compares configurations fairly on a shared, busy host.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / ticks


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
        todo += _children(current)
    return round(total_kb / 1024.0, 1)


# --- training -----------------------------------------------------------------------------

@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Send this process's and its children's stdout/stderr (fds 1, 2) to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _earlier_training(model: Path) -> Optional[Dict[str, Any]]:
    """Training figures of this very model from an earlier run (results/bench-*.json)."""
    for path in sorted(RESULTS.glob("bench-2*.json"), reverse=True):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for result in run.get("results", {}).values():
            if result.get("model") == str(model) and result.get("training_s") is not None:
                return {"model": str(model), "training_s": result["training_s"],
                        "training": f"fresh, empty cache, measured in the run of {run.get('started')}"}
    return None


def fresh_training(contender: Contender, reuse: bool) -> Dict[str, Any]:
    """Train `contender` from scratch (empty Rasa cache) into models/bench-<label>-<fingerprint>.

    The name differs from the bot's own model, so the benchmark never replaces it.
    With `reuse`, an existing bench model is used and its training time is not measured.
    """
    from revierlotse.model import model_path, train

    name = "bench-stock" if contender.config == STOCK_CONFIG else f"bench-{contender.label}"
    target = model_path(contender.config, name)
    if reuse and target.exists():
        earlier = _earlier_training(target)
        if earlier:
            return earlier
        return {"model": str(target), "training_s": None, "training": "reused (not measured)"}
    with tempfile.TemporaryDirectory(prefix="rasa-cache-") as cache, \
            output_to(LOGS / f"train-{contender.label}.log"):
        previous = os.environ.get("RASA_CACHE_DIRECTORY")
        os.environ["RASA_CACHE_DIRECTORY"] = cache
        try:
            started = time.monotonic()
            train(contender.config, name)
            seconds = time.monotonic() - started
        finally:
            if previous is None:
                os.environ.pop("RASA_CACHE_DIRECTORY", None)
            else:
                os.environ["RASA_CACHE_DIRECTORY"] = previous
    return {"model": str(target), "training_s": round(seconds, 1), "training": "fresh, empty cache"}


# --- serving ------------------------------------------------------------------------------

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


# --- report -------------------------------------------------------------------------------

def _level(result: Dict[str, Any], users: int) -> Optional[Dict[str, Any]]:
    return next((lv for lv in result.get("levels", []) if lv["users"] == users), None)


def _fmt(value, digits=1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _factor(a, b, higher_is_better=False) -> str:
    if a in (None, 0) or b in (None, 0):
        return "-"
    return f"{(a / b) if higher_is_better else (b / a):.1f}x"


def comparison_rows(results: Dict[str, Dict[str, Any]]) -> List[List[str]]:
    """Rows: metric, one value per contender, then revierlotse's factor against each
    baseline present (>1: revierlotse is better by that factor)."""
    labels = [c.label for c in CONTENDERS if c.label in results]
    baselines = [b for b in BASELINES if b in results]
    ours = results["revierlotse"]

    def row(metric: str, values: List[Any], digits=1, higher_is_better=False) -> List[str]:
        mine = values[labels.index("revierlotse")]
        factors = [_factor(mine, values[labels.index(b)], higher_is_better) for b in baselines]
        return [metric, *(_fmt(v, digits) for v in values), *factors]

    def each(get) -> List[Any]:
        return [get(results[label]) for label in labels]

    replicas = each(lambda r: r.get("serving", {}).get("replicas"))
    rows = [["Rasa replicas", *(_fmt(v, 0) for v in replicas), *([""] * len(baselines))]]
    for key, label in (("training_s", "training, fresh (s)"), ("ready_s", "start to ready (s)"),
                       ("first_reply_ms", "first reply (ms)")):
        rows.append(row(label, each(lambda r, key=key: r.get(key))))
    for key in ("rasa", "actions", "total"):
        rows.append(row(f"memory RSS {key} (MB)", each(lambda r, key=key: r["rss_mb"][key]), 0))
    for lv in ours["levels"]:
        u = lv["users"]
        at = lambda r: _level(r, u) or {}  # noqa: E731
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            rows.append(row(f"{u} users: {key[:3]} (ms)", each(lambda r, key=key: at(r).get(key))))
        rows.append(row(f"{u} users: throughput (msg/s)", each(lambda r: at(r).get("throughput_msg_s")),
                        higher_is_better=True))

        def cpu(r) -> Optional[float]:
            per = at(r).get("cpu_ms_per_msg")
            return round(per["rasa"] + per["actions"], 1) if per else None

        rows.append(row(f"{u} users: CPU per reply (ms)", each(cpu)))
        rows.append(row(f"{u} users: load generator CPU per reply (ms)",
                        each(lambda r: (at(r).get("cpu_ms_per_msg") or {}).get("load_generator"))))
        rows.append([f"{u} users: errors / requests",
                     *(f"{at(r).get('errors', '-')} / {at(r).get('requests', '-')}" for r in each(lambda r: r)),
                     *([""] * len(baselines))])
    return rows


def table_header(results: Dict[str, Dict[str, Any]]) -> List[str]:
    titles = {c.label: c.title for c in CONTENDERS}
    labels = [c.label for c in CONTENDERS if c.label in results]
    return ["metric", *(titles[label] for label in labels),
            *(f"ours vs {titles[b]}" for b in BASELINES if b in results)]


def text_table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# The throughput target compares with the stock configuration as `rasa init` and
# `rasa run` serve it; the same configuration on our serving isolates what the
# configuration alone gives and is reported beside it, against the same 2x.
TARGET_BASELINE = "stock"


def target_check(results: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Issue 9's targets (`kind` "target") and the stricter same-serving comparison ("reference")."""
    ours = results["revierlotse"]
    at10 = _level(ours, 10) or {}
    checks = [
        ("target", "p95 at 10 users (ms)", at10.get("p95_ms"), f"<= {TARGET_P95_MS_AT_10:.0f}",
         at10.get("p95_ms") is not None and at10["p95_ms"] <= TARGET_P95_MS_AT_10),
    ]
    titles = {c.label: c.title for c in CONTENDERS}
    for baseline in BASELINES:
        other10 = _level(results[baseline], 10) if baseline in results else None
        ratio, met = None, None
        if other10 and at10 and other10["throughput_msg_s"]:
            ratio = round(at10["throughput_msg_s"] / other10["throughput_msg_s"], 2)
            met = ratio >= TARGET_THROUGHPUT_FACTOR_AT_10
        checks.append(("target" if baseline == TARGET_BASELINE else "reference",
                       f"throughput at 10 users vs {titles[baseline]}", ratio,
                       f">= {TARGET_THROUGHPUT_FACTOR_AT_10:.0f}x", met))
    checks += [
        ("target", "training, fresh (s)", ours.get("training_s"), f"<= {TARGET_TRAINING_S:.0f}",
         ours.get("training_s") is not None and ours["training_s"] <= TARGET_TRAINING_S),
        ("target", "start to ready (s)", ours.get("ready_s"), f"<= {TARGET_READY_S:.0f}",
         ours.get("ready_s") is not None and ours["ready_s"] <= TARGET_READY_S),
    ]
    return [{"kind": k, "target": n, "value": v, "goal": g, "met": m} for k, n, v, g, m in checks]


def plot(results: Dict[str, Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat_ax, tput_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, result), color in zip(results.items(), ("tab:blue", "tab:orange", "tab:green")):
        users = [lv["users"] for lv in result["levels"]]
        for key, style in (("p50_ms", "-o"), ("p95_ms", "--s"), ("p99_ms", ":^")):
            lat_ax.plot(users, [lv[key] for lv in result["levels"]], style, color=color,
                        label=f"{label} {key[:3]}")
        tput_ax.plot(users, [lv["throughput_msg_s"] for lv in result["levels"]], "-o", color=color, label=label)
    lat_ax.axhline(TARGET_P95_MS_AT_10, color="grey", lw=0.8, ls="-.", label="target p95")
    lat_ax.set(xlabel="concurrent users", ylabel="latency (ms)", title="REST latency", yscale="log")
    tput_ax.set(xlabel="concurrent users", ylabel="replies per second", title="Throughput")
    for ax in (lat_ax, tput_ax):
        ax.set_xticks(sorted({lv["users"] for r in results.values() for lv in r["levels"]}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Revierlotse vs Rasa stock config (closed loop, loopback, {os.cpu_count()} cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main ---------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds per concurrency level and contender (20)")
    parser.add_argument("--slices", type=int, default=4,
                        help="turns per level, alternating between the contenders (4)")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds before measuring (5)")
    parser.add_argument("--levels", default="1,10,20", help="concurrent users, comma separated (1,10,20)")
    parser.add_argument("--only", choices=[c.label for c in CONTENDERS], help="measure one configuration only")
    parser.add_argument("--reuse-models", action="store_true",
                        help="serve existing bench models if present; their training time comes from an "
                             "earlier run in results/ (else it is not reported)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    contenders = [c for c in CONTENDERS if args.only in (None, c.label)]
    questions = heldout_questions()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run: Dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "loadavg_start": os.getloadavg(),
        "settings": {"duration_s": args.duration, "slices": max(1, args.slices), "warmup_s": args.warmup,
                     "levels": levels,
                     "questions": len(questions), "question_source": str(HELDOUT.relative_to(PROJECT_ROOT)),
                     "turns_per_conversation": 10},
        "results": {},
    }
    steps = len({c.config for c in contenders}) + len(contenders) * (2 + len(levels))
    trainings: Dict[str, Dict[str, Any]] = {}
    # The bar writes to a copy of stderr, so it survives the redirect during training.
    bar_file = os.fdopen(os.dup(2), "w")
    with tqdm(total=steps, desc="bench", unit="step", file=bar_file, dynamic_ncols=True) as bar, \
            contextlib.ExitStack() as servers:
        for contender in contenders:  # train first: nothing else runs while a model trains
            if contender.config not in trainings:
                bar.set_postfix_str(f"{contender.label}: training (log: {LOGS.relative_to(PROJECT_ROOT)})")
                trainings[contender.config] = fresh_training(contender, args.reuse_models)
                bar.update(1)
        # all contenders up at once (the idle ones cost next to no CPU), then measured in turns
        served = [Served(c, Path(trainings[c.config]["model"]), questions, args.warmup, bar, servers)
                  for c in contenders]
        measure_levels(served, questions, levels, args.duration, max(1, args.slices), bar)
        for one in served:
            run["results"][one.contender.label] = {"config": one.contender.config,
                                                   **trainings[one.contender.config], **one.result}
    run["loadavg_end"] = os.getloadavg()

    results = run["results"]
    args.out.mkdir(parents=True, exist_ok=True)
    if "revierlotse" in results and any(b in results for b in BASELINES):
        header, rows = table_header(results), comparison_rows(results)
        run["table_markdown"] = markdown_table(header, rows)
        print("\n" + text_table(header, rows))
        (args.out / "bench-latest.md").write_text(run["table_markdown"] + "\n")
    if "revierlotse" in results:
        run["targets"] = target_check(results)
        headings = {
            "target": "targets (throughput against the stock config as Rasa serves it):",
            "reference": "the configuration alone (the stock config served like ours), against the same 2x:",
        }
        for kind, heading in headings.items():
            print("\n" + heading)
            for t in (t for t in run["targets"] if t["kind"] == kind):
                mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
                print(f"  {t['target']:<52} {str(t['value']):>8}  goal {t['goal']:<8} {mark}")
    print(f"\nloadavg at start {run['loadavg_start']}, at end {run['loadavg_end']} ({os.cpu_count()} cores)")

    json_path, png_path = args.out / f"bench-{stamp}.json", args.out / f"bench-{stamp}.png"
    json_path.write_text(json.dumps(run, indent=2, ensure_ascii=False))
    plot(run["results"], png_path)
    for src in (json_path, png_path):
        latest = args.out / f"bench-latest{src.suffix}"
        latest.write_bytes(src.read_bytes())
    print(f"wrote {json_path.relative_to(PROJECT_ROOT) if json_path.is_relative_to(PROJECT_ROOT) else json_path}"
          f" and {png_path.name} (copies: bench-latest.*)")
    return run


if __name__ == "__main__":
    main()
