# Revierlotse: the front door. `make run` starts the bot, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
export RASA_TELEMETRY_ENABLED := false
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install kb train run shell test test-fast validate eval eval-nlu purge clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# uv from PATH, or the one `python3 -m pip` installs (usable before pyenv rehashes its shims).
# --compile-bytecode: the installed packages' .pyc files are written once, here. Python
# never writes them itself under PYTHONDONTWRITEBYTECODE (set above and on these
# machines), so without them every Rasa process compiled TensorFlow and Rasa from
# source at each start: 25 s to ready instead of 9-10 s.
$(STAMP): pyproject.toml
	@command -v uv >/dev/null || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@uv=$$(command -v uv || echo "python3 -m uv"); \
	  { test -x $(PY) || $$uv venv --python 3.10 $(VENV); } && \
	  $$uv pip install --python $(PY) --compile-bytecode -e ".[dev]"
	@touch $(STAMP)

# The website widget: deep-chat and socket.io-client from npm, pinned in web/package-lock.json
# (with axe-core, a dev dependency, for the browser tests), served by revierlotse.web.
WEBCHAT := web/node_modules/deep-chat/dist/deepChat.bundle.js
$(WEBCHAT): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $(WEBCHAT)

# Debian packages the tests use: Chromium for the browser tests (Playwright cannot
# download browsers here) and docker-compose to validate docker-compose.yml (no Docker
# engine runs here). Installed only when missing.
APT_PACKAGES := chromium docker-compose
APT_STAMP := $(VENV)/.apt-installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo )
$(APT_STAMP): $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO)apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO)apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

install: $(STAMP) $(WEBCHAT) $(APT_STAMP) ## create the venv (uv, Python 3.10) and install everything (widget bundle, Chromium, docker-compose)

kb: $(STAMP) ## load data/knowledge/ into DATABASE_URL (idempotent)
	$(PY) -m revierlotse.kb.cli

train: $(STAMP) ## train the model unless one for the current training data exists
	$(PY) -m revierlotse.model

run: install kb train ## set up everything and start the bot (Ctrl-C stops it)
	$(PY) -m revierlotse.serve

shell: kb train ## talk to the bot in the terminal
	$(PY) -m revierlotse.serve --shell

.PHONY: telegram-webhook
telegram-webhook: $(STAMP) ## register the Telegram webhook (TELEGRAM_WEBHOOK_URL + TELEGRAM_SECRET_TOKEN from .env)
	$(PY) -m revierlotse.telegram_webhook

validate: $(STAMP) ## rasa data validate, failing on warnings
	$(PY) -m revierlotse.launch rasa data validate --fail-on-warnings --config config.yml --domain domain.yml --data data/nlu data/dialogue

test: install kb train ## run every test (unit, NLU, stories, end to end)
	$(PY) -m pytest -ra

test-fast: $(STAMP) ## unit tests only (no servers)
	$(PY) -m pytest -ra -m "not e2e"

.PHONY: kb-coverage
kb-coverage: $(STAMP) ## list sentences of the article (ARTICLE=path) that no fact in data/knowledge/facts.yml covers
	$(PY) -m revierlotse.kb.coverage $(ARTICLE)

.PHONY: eval
eval: kb train ## answer-level evaluation on the blind question sets (tests/eval/): accuracy, misleading answers, abstention
	$(PY) -m revierlotse.evaluation.answers $(EVAL_ARGS)

eval-nlu: train ## NLU accuracy on the held-out set, ours against a TF-IDF baseline
	$(PY) -m revierlotse.evaluation.nlu

.PHONY: report
report: $(STAMP) ## operator report (HTML) from the stored conversations into reports/; FROM=YYYY-MM-DD TO=YYYY-MM-DD optional
	$(PY) -m revierlotse.report $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

.PHONY: bench
# The questions the bench sends: the held-out NLU examples, which the model never saw.
BENCH_QUESTIONS ?= tests/nlu/heldout.yml
bench: $(STAMP) ## benchmark: ours vs Rasa's stock config (fresh training, start, memory, latency, throughput) into results/
	$(PY) -m revierlotse.bench --questions $(BENCH_QUESTIONS) $(BENCH_ARGS)

purge: $(STAMP) ## delete conversations older than RETENTION_DAYS (DSGVO), print how many
	$(PY) -m revierlotse.purge

clean: ## remove trained models, runtime data and test artefacts
	rm -rf models var results artifacts .pytest_cache
