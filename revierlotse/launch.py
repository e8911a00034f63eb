"""Entry point for every Rasa process: `python -m revierlotse.launch rasa ARGS` or `... actions`.

It reads the settings (environment + `.env`) once, exports the variables that
endpoints.yml and credentials.yml expand, applies Revierlotse's Rasa patches
(`revierlotse.rasa36`) and then
hands over to the Rasa CLI or the rasa-sdk action server.
"""

from __future__ import annotations

import os
import sys
from typing import List

from revierlotse.settings import get_settings, rasa_environment


def export_environment() -> None:
    settings = get_settings()
    os.environ.update(rasa_environment(settings))
    os.environ.setdefault("LOG_LEVEL", settings.log_level)


def api_token_problem(args: List[str]) -> str:
    """Why these `rasa` arguments must not start (empty if they may).

    `--enable-api` without a token opens the whole HTTP API (tracker read/write,
    model replace) to anyone who can reach the port.
    """
    if "--enable-api" not in args:
        return ""
    token = ""
    for i, arg in enumerate(args):
        if arg in {"--auth-token", "-t"} and i + 1 < len(args):
            token = args[i + 1]
        elif arg.startswith("--auth-token="):
            token = arg.split("=", 1)[1]
    if not token.strip():
        return ("Refusing to start: Rasa's HTTP API is enabled (RASA_API_ENABLED) but no token is set. "
                "Set RASA_API_TOKEN in .env to a long random value, or turn the API off.")
    return ""


def run_rasa(args: List[str]) -> None:
    problem = api_token_problem(args)
    if problem:
        sys.exit(problem)
    export_environment()
    from revierlotse import rasa36

    speedups = get_settings().rasa_speedups
    try:
        rasa36.apply(speedups)
    except (rasa36.RasaVersionError, rasa36.PatchTargetError) as error:
        sys.exit(f"Refusing to start: {error}")
    print(f"Rasa {rasa36.RASA_VERSION} patched by revierlotse.rasa36 (speed-ups {'on' if speedups else 'off'})",
          file=sys.stderr, flush=True)
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *args]
    rasa_main()


def run_actions(args: List[str]) -> None:
    """The action server (rasa-sdk only: starts in about a second, no TensorFlow)."""
    export_environment()
    settings = get_settings()
    os.environ["SANIC_HOST"] = settings.action_server_host
    from rasa_sdk.__main__ import main as sdk_main

    sys.argv = ["rasa_sdk", "--actions", "actions", "--port", str(settings.action_server_port), *args]
    sdk_main()


def one_blas_thread() -> None:
    """NumPy's OpenBLAS on one thread (unless the operator set it).

    Per message the math is tiny (one sentence, a few small matrix products); with the
    default of one OpenBLAS thread per core, the extra threads spin-wait and take CPU
    from the server's other requests: a Rasa server at 10 users used 44 ms of CPU per
    reply with it and 23 ms without. Must run before NumPy is imported. TensorFlow does
    not use OpenBLAS, so the stock pipeline is unaffected.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"rasa", "actions"}:
        sys.exit("usage: python -m revierlotse.launch rasa ARGS... | actions [ARGS...]")
    one_blas_thread()
    (run_rasa if sys.argv[1] == "rasa" else run_actions)(sys.argv[2:])


if __name__ == "__main__":
    main()
