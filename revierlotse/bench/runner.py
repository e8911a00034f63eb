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
generator) for closed-loop users at each concurrency level, with the German questions
of `--questions FILE` (`make bench`: the held-out NLU set). All contenders are up at
once and each level is measured in slices that alternate between them (A B C, C B A,
...), because a machine's speed can drift by tens of percent within minutes: measured
one after another, the contender that came last would take the drift alone.

Writes results/bench-<time>.json, results/bench-<time>.png and results/bench-latest.*
(JSON, PNG, Markdown table), prints the comparison table and the target check.

The parts: `contenders` (who runs, and their fresh training), `serving` (stacks side by
side, load in alternating slices), `procfs` (CPU and memory of process trees),
`report` (table, targets, plot), `questions` (the question file), `loadgen`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from revierlotse.bench.contenders import BASELINES, CONTENDERS, LOGS, RESULTS, fresh_training
from revierlotse.bench.questions import add_questions_argument, read_questions
from revierlotse.bench.report import comparison_rows, markdown_table, plot, table_header, target_check, text_table
from revierlotse.bench.serving import Served, measure_levels
from revierlotse.settings import PROJECT_ROOT


def _shown(path: Path) -> str:
    """`path` relative to the project when it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


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
    add_questions_argument(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    contenders = [c for c in CONTENDERS if args.only in (None, c.label)]
    questions = read_questions(args.questions)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run: Dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "loadavg_start": os.getloadavg(),
        "settings": {"duration_s": args.duration, "slices": max(1, args.slices), "warmup_s": args.warmup,
                     "levels": levels,
                     "questions": len(questions), "question_source": _shown(args.questions),
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
