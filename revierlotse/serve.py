"""`make run` / `make shell`: start the bot's processes and stop them cleanly on Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from revierlotse.model import ensure_model
from revierlotse.settings import PROJECT_ROOT
from revierlotse.stack import PY, Stack


def run_bot(log_dir) -> None:
    model = ensure_model()
    stack = Stack.default(model, log_dir=log_dir, web=True)
    print(f"Starting Revierlotse with {model.name} (logs in {log_dir}) ...", flush=True)
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    # Ctrl-C, a closed terminal and `kill` all end in the same orderly stop.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    try:
        stack.start()
        print(f"Revierlotse is ready. REST: {stack.rasa_url}/webhooks/rest/webhook", flush=True)
        print(f"Website with the chat widget: {stack.web_url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stopping:
            for service in stack.services:
                if service.proc.poll() is not None:
                    print(f"{service.name} stopped unexpectedly (see {service.log_path})", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        # Stop first: the terminal or pipe we print to may already be gone.
        stack.stop()
        _say("Revierlotse stopped.")


def _say(text: str) -> None:
    try:
        print(text, flush=True)
    except OSError:  # stdout closed with the terminal (e.g. `make run | tee` after Ctrl-C)
        pass


def run_shell(log_dir) -> None:
    model = ensure_model()
    stack = Stack.default(model, log_dir=log_dir)
    actions = stack.services[0]
    actions.start()
    try:
        actions.wait_ready(60)
        subprocess.run(
            [PY, "-m", "revierlotse.launch", "rasa", "shell", "--model", str(model), "--endpoints", "endpoints.yml",
             # the shell's own server: local only, on RASA_PORT (a free one in tests)
             "--interface", "127.0.0.1", "--port", str(stack.settings.rasa_port)],
            cwd=PROJECT_ROOT,
        )
    except KeyboardInterrupt:
        pass
    finally:
        actions.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shell", action="store_true", help="talk to the bot in this terminal")
    args = parser.parse_args()
    log_dir = PROJECT_ROOT / "var" / "log"
    (run_shell if args.shell else run_bot)(log_dir)


if __name__ == "__main__":
    main()
