"""What a deployment reads: endpoints.yml builds our stores, the compose file and its proxy."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from rasa.core.lock_store import InMemoryLockStore, LockStore
from rasa.core.utils import read_endpoints_from_path

from revierlotse.settings import PROJECT_ROOT
from revierlotse.stores.lock_store import RedisAtomicLockStore


def test_endpoints_yml_builds_our_stores(monkeypatch, tmp_path, redis_url):
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:1/webhook")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("REDIS_URL", "")
    endpoints = read_endpoints_from_path(PROJECT_ROOT / "endpoints.yml")
    assert isinstance(LockStore.create(endpoints.lock_store), InMemoryLockStore)
    assert endpoints.tracker_store.type == "revierlotse.stores.tracker_store.DatabaseTrackerStore"
    assert endpoints.tracker_store.url == os.environ["DATABASE_URL"]

    monkeypatch.setenv("REDIS_URL", redis_url)
    endpoints = read_endpoints_from_path(PROJECT_ROOT / "endpoints.yml")
    assert isinstance(LockStore.create(endpoints.lock_store), RedisAtomicLockStore)

    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("SANIC_WORKERS", "2")  # several workers without Redis: refuse
    endpoints = read_endpoints_from_path(PROJECT_ROOT / "endpoints.yml")
    with pytest.raises(ValueError, match="REDIS_URL"):
        LockStore.create(endpoints.lock_store)


def compose_command():
    """`docker compose` (plugin) or `docker-compose` (standalone), whichever works."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_file_is_valid():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "--file", "docker-compose.yml", "config"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, **COMPOSE_SECRETS}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("rasa", "actions", "db", "redis", "proxy"):
        assert f"  {service}:" in config
    assert "REDIS_URL: redis://:redis-config-check@redis:6379/0" in config


# The secrets docker-compose.yml requires; each missing one stops `config`.
COMPOSE_SECRETS = {"POSTGRES_PASSWORD": "compose-config-check", "REDIS_PASSWORD": "redis-config-check",
                   "SESSION_SECRET": "session-config-check"}


def compose_config() -> dict:
    """docker-compose.yml as compose resolves it (anchors merged, variables filled in)."""
    import yaml

    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*command, "--file", "docker-compose.yml", "config"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, env={**os.environ, **COMPOSE_SECRETS}, timeout=120)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_requires_every_secret():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {k: v for k, v in os.environ.items() if k not in COMPOSE_SECRETS}
    for missing in COMPOSE_SECRETS:
        given = {k: v for k, v in COMPOSE_SECRETS.items() if k != missing}
        result = subprocess.run([*command, "--file", "docker-compose.yml", "config"], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, env={**env, **given}, timeout=120)
        assert result.returncode != 0 and missing in result.stderr, (missing, result.stderr)


def test_compose_keeps_actions_redis_and_db_on_an_internal_network():
    config = compose_config()
    services, networks = config["services"], config["networks"]
    internal = {name for name, net in networks.items() if (net or {}).get("internal")}
    assert internal, "an internal network"
    for name in ("actions", "redis", "db", "kb"):
        assert set(services[name]["networks"]) <= internal, name
        assert "ports" not in services[name] and "expose" not in services[name], name
    # The proxy and the page never sit on the internal network; Rasa bridges both.
    assert not set(services["proxy"]["networks"]) & internal
    assert not set(services["web"]["networks"]) & internal
    assert set(services["rasa"]["networks"]) & internal and set(services["rasa"]["networks"]) - internal
    assert [name for name, service in services.items() if service.get("ports")] == ["proxy"]


def test_compose_gives_secrets_only_to_the_services_that_use_them():
    services = compose_config()["services"]
    holders = {
        "compose-config-check": {"db", "kb", "actions", "rasa"},  # the database password
        "redis-config-check": {"redis", "rasa"},
        "session-config-check": {"rasa"},
    }
    for secret, expected in holders.items():
        having = {name for name, service in services.items()
                  if secret in str(service.get("environment", {})) or secret in str(service.get("command", ""))}
        assert having == expected, (secret, having)
    for name in ("web", "actions", "kb"):
        assert not {k for k in services[name].get("environment", {}) if k.startswith("TELEGRAM")}, name


def test_compose_redis_has_a_password_and_keeps_its_data():
    redis = compose_config()["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--requirepass" in command and "--appendonly yes" in command
    assert any(str(v).endswith(":/data") or ":/data:" in str(v) for v in redis["volumes"])
    assert "REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])


def test_dockerfile_installs_the_widget_from_the_lock_file():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "npm ci" in dockerfile and "npm install" not in dockerfile
    assert "package-lock.json" in dockerfile


def test_nginx_limits_requests_per_client():
    import re

    nginx = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    zones = dict(re.findall(r"limit_req_zone\s+\$binary_remote_addr\s+zone=(\w+):\w+\s+rate=([\w/]+);", nginx))
    assert zones
    locations = dict(re.findall(r"location ([^\s{]+) \{([^}]*)\}", nginx))
    for path in ("/socket.io/", "/webhooks/", "/"):
        used = re.search(r"limit_req zone=(\w+)", locations[path])
        assert used and used.group(1) in zones, path
    assert "limit_req_status  429;" in nginx or "limit_req_status 429;" in nginx


def test_compose_proxy_is_sticky_for_socketio_and_points_at_compose_services():
    import re

    import yaml

    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    nginx = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    mounted = [v.split(":")[0] for v in services["proxy"]["volumes"]]
    assert "./deploy/nginx.conf" in mounted
    upstreams = dict(re.findall(r"upstream (\w+) \{([^}]*)\}", nginx))
    assert "ip_hash;" in upstreams["rasa_sticky"]
    assert re.search(r"location /socket\.io/ \{[^}]*proxy_pass http://rasa_sticky;[^}]*Upgrade", nginx)
    for body in upstreams.values():
        for host in re.findall(r"server ([\w-]+):\d+;", body):
            assert host in services, f"nginx upstream {host} is not a compose service"
    assert services["rasa"]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
    assert "@redis:" in services["rasa"]["environment"]["REDIS_URL"]
    assert services["rasa"]["environment"]["DATABASE_URL"].startswith("postgresql://")
