"""The benchmark's load generator and statistics, against a tiny local aiohttp server.

No timing asserts: only counts, sender handling, error accounting and arithmetic.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import List

import pytest
from aiohttp import web

from revierlotse.bench.loadgen import LoadResult, Sample, closed_loop, percentile
from revierlotse.bench.procfs import cpu_seconds, rss_mb
from revierlotse.bench.questions import read_questions
from revierlotse.bench.report import comparison_rows, markdown_table, plot, table_header, target_check, text_table
from tests.conftest import HELDOUT


class FakeBot:
    """Answers like Rasa's REST channel; remembers who said what; can be told to fail."""

    def __init__(self, fail_every: int = 0) -> None:
        self.received: List[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_every = fail_every

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let other virtual users in
            if self.fail_every and len(self.received) % self.fail_every == 0:
                return web.json_response({"error": "boom"}, status=500)
            if body["message"] == "schweigen":
                return web.json_response([])
            return web.json_response([{"recipient_id": body["sender"], "text": "Glück auf!"}])
        finally:
            self.in_flight -= 1


async def serve(bot: FakeBot):
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", bot.webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/webhooks/rest/webhook"


def load_against(bot: FakeBot, messages, users: int, duration_s: float = 0.3, **kwargs) -> LoadResult:
    async def main() -> LoadResult:
        runner, url = await serve(bot)
        try:
            return await closed_loop(url, messages, users, duration_s, **kwargs)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_every_request_is_counted_and_every_virtual_user_has_its_own_sender():
    bot = FakeBot()
    result = load_against(bot, ["Hallo", "Was verdient man?"], users=5, turns_per_conversation=None)
    assert len(result.samples) == len(bot.received) > 5
    assert result.errors == 0
    senders = {m["sender"] for m in bot.received}
    assert len(senders) == 5
    assert bot.max_in_flight <= 5
    summary = result.summary()
    assert summary["ok"] == summary["requests"] == len(bot.received)
    assert summary["throughput_msg_s"] > 0
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_closed_loop_keeps_all_users_busy_at_once():
    bot = FakeBot()
    load_against(bot, ["Hallo"], users=8)
    assert bot.max_in_flight > 1


def test_a_virtual_user_starts_a_new_conversation_after_the_given_turns():
    bot = FakeBot()
    load_against(bot, ["a", "b", "c"], users=1, turns_per_conversation=3)
    per_sender = {}
    for m in bot.received:
        per_sender.setdefault(m["sender"], []).append(m["message"])
    assert len(bot.received) > 3  # otherwise the run was too short to see a rotation
    assert all(len(turns) <= 3 for turns in per_sender.values())
    assert list(per_sender.values())[0] == ["a", "b", "c"]


def test_with_several_urls_each_user_sticks_to_one_replica_and_users_are_spread_evenly():
    first, second = FakeBot(), FakeBot()

    async def main() -> LoadResult:
        (runner_a, url_a), (runner_b, url_b) = await serve(first), await serve(second)
        try:
            return await closed_loop([url_a, url_b], ["Hallo"], 4, 0.3, turns_per_conversation=None)
        finally:
            await runner_a.cleanup()
            await runner_b.cleanup()

    result = asyncio.run(main())
    assert result.errors == 0 and len(result.samples) == len(first.received) + len(second.received)
    senders_a = {m["sender"] for m in first.received}
    senders_b = {m["sender"] for m in second.received}
    assert len(senders_a) == len(senders_b) == 2 and not senders_a & senders_b


def test_server_errors_and_empty_replies_count_as_errors_not_latencies():
    bot = FakeBot(fail_every=2)
    result = load_against(bot, ["Hallo", "schweigen"], users=1, turns_per_conversation=None)
    summary = result.summary()
    assert summary["errors"] > 0
    assert summary["ok"] + summary["errors"] == summary["requests"]
    assert set(summary["error_kinds"]) <= {"HTTP 500", "rejected by check"}
    assert len(result.ok_latencies_ms) == summary["ok"]


def test_unreachable_server_is_reported_as_connection_errors():
    async def main() -> LoadResult:
        runner, url = await serve(FakeBot())
        await runner.cleanup()  # port now closed
        return await closed_loop(url, ["Hallo"], users=2, duration_s=0.2)

    result = asyncio.run(main())
    assert result.samples and result.errors == len(result.samples)
    assert result.summary()["throughput_msg_s"] == 0


def test_percentile_interpolates_like_numpy():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 0) == 10.0 and percentile(values, 100) == 40.0
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([], 50) != percentile([], 50)  # NaN for no data


def test_summary_of_known_samples():
    samples = [Sample(0.0, latency / 1000.0, True) for latency in (100, 200, 300, 400)]
    samples.append(Sample(0.0, 5.0, False, "HTTP 500"))
    summary = LoadResult(users=2, duration_s=2.0, samples=samples).summary()
    assert summary["ok"] == 4 and summary["errors"] == 1
    assert summary["throughput_msg_s"] == 2.0
    assert summary["p50_ms"] == 250.0 and summary["max_ms"] == 400.0
    assert summary["error_kinds"] == {"HTTP 500": 1}


def test_the_question_file_gives_plain_german_texts():
    questions = read_questions(HELDOUT)
    assert len(questions) > 50
    assert not any("]{" in q or "](" in q for q in questions)
    assert "Was verdient ein IT Manager in Duisburg?" in questions


def test_a_file_without_examples_is_refused(tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text('version: "3.1"\nnlu: []\n', encoding="utf-8")
    with pytest.raises(ValueError, match="no NLU examples"):
        read_questions(empty)


@pytest.mark.parametrize("tool", ["runner", "profile", "soak"])
def test_every_bench_tool_is_told_which_questions_to_send(tool, monkeypatch, capsys):
    import importlib

    module = importlib.import_module(f"revierlotse.bench.{tool}")
    monkeypatch.setattr("sys.argv", [tool])
    with pytest.raises(SystemExit) as raised:
        module.main() if tool == "soak" else module.main([])
    assert raised.value.code == 2 and "--questions" in capsys.readouterr().err


def test_memory_and_cpu_of_a_process_tree_are_read_from_proc():
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        own = rss_mb(os.getpid())
        assert own > 10.0
        assert rss_mb(os.getpid()) >= own - 5.0 and own > rss_mb(child.pid) > 0  # child counted
        before = cpu_seconds(os.getpid())
        sum(i * i for i in range(2_000_000))
        assert cpu_seconds(os.getpid()) > before
    finally:
        child.communicate(b"")
    assert rss_mb(child.pid) == 0.0  # gone


def _fake_result(tput: float, p95: float) -> dict:
    return {
        "training_s": 30.0, "ready_s": 20.0, "first_reply_ms": 100.0,
        "rss_mb": {"rasa": 600.0, "actions": 60.0, "total": 660.0},
        "levels": [{"users": u, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.2,
                    "throughput_msg_s": tput * (1 if u == 1 else 2), "errors": 0, "requests": 100,
                    "cpu_ms_per_msg": {"rasa": 1000.0 / tput, "actions": 2.0}}
                   for u in (1, 10, 20)],
    }


def test_report_compares_all_contenders_and_checks_targets(tmp_path: Path):
    results = {"revierlotse": _fake_result(tput=40.0, p95=100.0), "stock": _fake_result(tput=10.0, p95=400.0),
               "stock-our-serving": _fake_result(tput=20.0, p95=200.0)}
    results["revierlotse"]["serving"] = {"replicas": 2}
    header, rows = table_header(results), comparison_rows(results)
    assert header == ["metric", "revierlotse", "stock (Rasa as shipped)", "stock config, our serving",
                      "ours vs stock (Rasa as shipped)", "ours vs stock config, our serving"]
    by_metric = {r[0]: r for r in rows}
    assert all(len(r) == len(header) for r in rows)
    assert by_metric["10 users: throughput (msg/s)"][1:] == ["80.0", "20.0", "40.0", "4.0x", "2.0x"]
    assert by_metric["10 users: p95 (ms)"][4:] == ["4.0x", "2.0x"]
    assert by_metric["10 users: CPU per reply (ms)"][1:3] == ["27.0", "102.0"]
    assert by_metric["Rasa replicas"][1:4] == ["2", "-", "-"]
    assert markdown_table(header, rows).count("\n") == len(rows) + 1
    assert "stock config, our serving" in text_table(header, rows).splitlines()[0]
    checks = {c["target"]: c for c in target_check(results)}
    assert checks["p95 at 10 users (ms)"]["met"] is True
    assert checks["throughput at 10 users vs stock (Rasa as shipped)"]["value"] == 4.0
    assert checks["throughput at 10 users vs stock config, our serving"]["value"] == 2.0
    # the target is against the stock config as Rasa serves it; the same-serving one is reported beside it
    assert checks["throughput at 10 users vs stock (Rasa as shipped)"]["kind"] == "target"
    assert checks["throughput at 10 users vs stock config, our serving"]["kind"] == "reference"
    assert [c["kind"] for c in checks.values()].count("target") == 4
    two = {k: results[k] for k in ("revierlotse", "stock")}  # `--only`-style partial runs still report
    assert len(table_header(two)) == len(comparison_rows(two)[0]) == 4
    assert target_check(two)[2]["value"] is None
    plot(results, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    json.dumps({"rows": rows, "checks": list(checks.values())})  # JSON-serialisable


def test_levels_alternate_between_contenders_in_slices_and_add_up(monkeypatch):
    import os
    import threading

    from revierlotse.bench import contenders, serving

    bots = {label: FakeBot() for label in ("ours", "stock", "stock-ours")}
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    servers = {label: asyncio.run_coroutine_threadsafe(serve(bot), loop).result(10) for label, bot in bots.items()}
    served = []
    for label, (_, url) in servers.items():
        one = serving.Served.__new__(serving.Served)
        one.contender = contenders.Contender(label, "config.yml", True, label)
        one.urls, one.rasa_pids, one.actions_pid = [url], [os.getpid()], os.getpid()
        one.result = {"levels": []}
        served.append(one)
    order: List[str] = []
    real_run_load = serving.run_load

    def recording_run_load(urls, *args, **kwargs):
        order.append(next(label for label, (_, url) in servers.items() if urls == [url]))
        return real_run_load(urls, *args, **kwargs)

    monkeypatch.setattr(serving, "run_load", recording_run_load)

    class Bar:
        def set_postfix_str(self, text): pass
        def update(self, n): pass

    try:
        serving.measure_levels(served, ["Was verdient man?", "Welche Zertifikate?"], [2, 3], 0.4, 4, Bar())
    finally:
        for runner_, _ in servers.values():
            asyncio.run_coroutine_threadsafe(runner_.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
    forth, back = ["ours", "stock", "stock-ours"], ["stock-ours", "stock", "ours"]
    assert order == (forth + back) * 2 * 2  # per level: A B C, C B A, A B C, C B A
    for one in served:
        label = one.contender.label
        assert [level["users"] for level in one.result["levels"]] == [2, 3]
        assert all(level["slices"] == 4 for level in one.result["levels"])
        # every request of a contender's slices is counted, and only its own bot got them
        assert sum(level["requests"] for level in one.result["levels"]) == len(bots[label].received)
        assert all(level["duration_s"] >= 0.4 for level in one.result["levels"])
        assert set(one.result["levels"][0]["cpu_ms_per_msg"]) == {"rasa", "actions", "load_generator"}
        senders = {body["sender"] for body in bots[label].received}
        assert {s.split("-")[2] for s in senders} == {"s0", "s1", "s2", "s3"}  # a fresh run id per slice
        assert "rss_mb_after_load" in one.result
