"""`make bench`: Revierlotse (config.yml) against Rasa's stock configuration, in one run.

For each configuration: a fresh training (empty Rasa cache, timed), a stack of its own
(action server + Rasa server on free ports, its own SQLite knowledge base), the time
from process start to ready, the time of the first reply, resident memory after a
warm-up, and REST latency (p50/p95/p99) and throughput for closed-loop users at each
concurrency level, with German questions from the held-out NLU set.

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
from typing import Any, Dict, Iterator, List, Optional, Sequence

import yaml

from revierlotse.bench.loadgen import Sample, run_load
from revierlotse.settings import PROJECT_ROOT

HELDOUT = PROJECT_ROOT / "tests" / "nlu" / "heldout.yml"
STOCK_CONFIG = "revierlotse/bench/stock-config.yml"
RESULTS = PROJECT_ROOT / "results"
LOGS = PROJECT_ROOT / "artifacts" / "bench"

# Targets from issue 9 (this 2-core machine).
TARGET_P95_MS_AT_10 = 150.0
TARGET_THROUGHPUT_FACTOR_AT_10 = 2.0
TARGET_TRAINING_S = 60.0
TARGET_READY_S = 25.0


@dataclass(frozen=True)
class Contender:
    label: str  # "revierlotse" or "stock"
    config: str  # config path relative to the project root


CONTENDERS = (Contender("revierlotse", "config.yml"), Contender("stock", STOCK_CONFIG))

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

    name = f"bench-{contender.label}"
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
    from revierlotse.kb.models import make_engine

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


def measure_serving(contender: Contender, model: Path, questions: Sequence[str], levels: Sequence[int],
                    duration_s: float, warmup_s: float, bar) -> Dict[str, Any]:
    from revierlotse.stack import Stack

    result: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-{contender.label}-") as tmp:
        overrides = {
            "DATABASE_URL": knowledge_db(Path(tmp)),
            "RASA_HOST": "127.0.0.1",
            "RASA_PORT": str(free_port()),
            "ACTION_SERVER_PORT": str(free_port()),
            "LOG_LEVEL": "INFO",
        }
        stack = Stack.default(model, overrides, log_dir=LOGS / contender.label)
        bar.set_postfix_str(f"{contender.label}: starting servers")
        started = time.monotonic()
        with stack:
            result["ready_s"] = round(time.monotonic() - started, 1)
            url = f"{stack.rasa_url}/webhooks/rest/webhook"
            result["first_reply_ms"] = first_reply_ms(url, questions[0])
            bar.update(1)

            bar.set_postfix_str(f"{contender.label}: warm-up {warmup_s:.0f} s")
            warm = run_load(url, questions, users=2, duration_s=warmup_s, sender_prefix="bench-warmup")
            result["warmup"] = warm.summary()
            rasa_pid = stack.service("rasa server").proc.pid
            actions_pid = stack.service("action server").proc.pid
            result["rss_mb"] = {"rasa": rss_mb(rasa_pid), "actions": rss_mb(actions_pid)}
            result["rss_mb"]["total"] = round(result["rss_mb"]["rasa"] + result["rss_mb"]["actions"], 1)
            bar.update(1)

            result["levels"] = []
            for users in levels:
                done = [0]

                def progress(sample: Sample, users=users, done=done) -> None:
                    done[0] += 1
                    if done[0] % 10 == 0:
                        bar.set_postfix_str(f"{contender.label}: {users} users, {done[0]} replies")

                cpu_before = cpu_seconds(rasa_pid), cpu_seconds(actions_pid)
                load = run_load(url, questions, users=users, duration_s=duration_s,
                                sender_prefix=f"bench-{users}u", on_reply=progress)
                summary = load.summary()
                replies = max(summary["ok"], 1)
                summary["cpu_ms_per_msg"] = {
                    "rasa": round(1000.0 * (cpu_seconds(rasa_pid) - cpu_before[0]) / replies, 1),
                    "actions": round(1000.0 * (cpu_seconds(actions_pid) - cpu_before[1]) / replies, 1),
                }
                summary["loadavg_after"] = os.getloadavg()
                result["levels"].append(summary)
                bar.update(1)
            result["rss_mb_after_load"] = {"rasa": rss_mb(rasa_pid), "actions": rss_mb(actions_pid)}
    return result


# --- report -------------------------------------------------------------------------------

def _level(result: Dict[str, Any], users: int) -> Optional[Dict[str, Any]]:
    return next((lv for lv in result.get("levels", []) if lv["users"] == users), None)


def comparison_rows(ours: Dict[str, Any], stock: Dict[str, Any]) -> List[List[str]]:
    """Rows: metric, ours, stock, factor (>1: ours is better by that factor)."""

    def fmt(value, digits=1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    def factor(a, b, higher_is_better=False) -> str:
        if a in (None, 0) or b in (None, 0):
            return "-"
        return f"{(a / b) if higher_is_better else (b / a):.1f}x"

    rows = []
    for key, label in (("training_s", "training, fresh (s)"), ("ready_s", "start to ready (s)"),
                       ("first_reply_ms", "first reply (ms)")):
        rows.append([label, fmt(ours.get(key)), fmt(stock.get(key)), factor(ours.get(key), stock.get(key))])
    for key in ("rasa", "actions", "total"):
        a, b = ours["rss_mb"][key], stock["rss_mb"][key]
        rows.append([f"memory RSS {key} (MB)", fmt(a, 0), fmt(b, 0), factor(a, b)])
    for lv in ours["levels"]:
        other = _level(stock, lv["users"]) or {}
        u = lv["users"]
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            rows.append([f"{u} users: {key[:3]} (ms)", fmt(lv[key]), fmt(other.get(key)),
                         factor(lv[key], other.get(key))])
        rows.append([f"{u} users: throughput (msg/s)", fmt(lv["throughput_msg_s"]),
                     fmt(other.get("throughput_msg_s")),
                     factor(lv["throughput_msg_s"], other.get("throughput_msg_s"), higher_is_better=True)])
        if "cpu_ms_per_msg" in lv and "cpu_ms_per_msg" in other:
            a = lv["cpu_ms_per_msg"]["rasa"] + lv["cpu_ms_per_msg"]["actions"]
            b = other["cpu_ms_per_msg"]["rasa"] + other["cpu_ms_per_msg"]["actions"]
            rows.append([f"{u} users: CPU per reply (ms)", fmt(a), fmt(b), factor(a, b)])
        rows.append([f"{u} users: errors / requests", f"{lv['errors']} / {lv['requests']}",
                     f"{other.get('errors', '-')} / {other.get('requests', '-')}", ""])
    return rows


HEADER = ["metric", "revierlotse", "stock", "ours better by"]


def text_table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(HEADER), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---:|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def target_check(ours: Dict[str, Any], stock: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    at10 = _level(ours, 10) or {}
    stock10 = _level(stock, 10) if stock else None
    checks = [
        ("p95 at 10 users (ms)", at10.get("p95_ms"), f"<= {TARGET_P95_MS_AT_10:.0f}",
         at10.get("p95_ms") is not None and at10["p95_ms"] <= TARGET_P95_MS_AT_10),
        ("throughput at 10 users vs stock", None, f">= {TARGET_THROUGHPUT_FACTOR_AT_10:.0f}x", None),
        ("training, fresh (s)", ours.get("training_s"), f"<= {TARGET_TRAINING_S:.0f}",
         ours.get("training_s") is not None and ours["training_s"] <= TARGET_TRAINING_S),
        ("start to ready (s)", ours.get("ready_s"), f"<= {TARGET_READY_S:.0f}",
         ours.get("ready_s") is not None and ours["ready_s"] <= TARGET_READY_S),
    ]
    if stock10 and at10 and stock10["throughput_msg_s"]:
        ratio = round(at10["throughput_msg_s"] / stock10["throughput_msg_s"], 2)
        checks[1] = (checks[1][0], ratio, checks[1][2], ratio >= TARGET_THROUGHPUT_FACTOR_AT_10)
    return [{"target": n, "value": v, "goal": g, "met": m} for n, v, g, m in checks]


def plot(results: Dict[str, Dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat_ax, tput_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, result), color in zip(results.items(), ("tab:blue", "tab:orange")):
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
    fig.suptitle("Revierlotse vs Rasa stock config (closed loop, loopback, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main ---------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level (20)")
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
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "levels": levels,
                     "questions": len(questions), "question_source": str(HELDOUT.relative_to(PROJECT_ROOT)),
                     "turns_per_conversation": 10},
        "results": {},
    }
    steps = len(contenders) * (3 + len(levels))
    # The bar writes to a copy of stderr, so it survives the redirect during training.
    bar_file = os.fdopen(os.dup(2), "w")
    with tqdm(total=steps, desc="bench", unit="step", file=bar_file, dynamic_ncols=True) as bar:
        for contender in contenders:
            bar.set_postfix_str(f"{contender.label}: training (log: {LOGS.relative_to(PROJECT_ROOT)})")
            training = fresh_training(contender, args.reuse_models)
            bar.update(1)
            serving = measure_serving(contender, Path(training["model"]), questions, levels,
                                      args.duration, args.warmup, bar)
            run["results"][contender.label] = {"config": contender.config, **training, **serving}
    run["loadavg_end"] = os.getloadavg()

    ours, stock = run["results"].get("revierlotse"), run["results"].get("stock")
    args.out.mkdir(parents=True, exist_ok=True)
    if ours and stock:
        rows = comparison_rows(ours, stock)
        run["table_markdown"] = markdown_table(rows)
        print("\n" + text_table(rows))
        (args.out / "bench-latest.md").write_text(run["table_markdown"] + "\n")
    if ours:
        run["targets"] = target_check(ours, stock)
        print("\ntargets (this machine):")
        for t in run["targets"]:
            mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            print(f"  {t['target']:<34} {str(t['value']):>8}  goal {t['goal']:<8} {mark}")
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
