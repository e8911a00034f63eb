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
        env={**os.environ, "POSTGRES_PASSWORD": "compose-config-check"}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for service in ("rasa", "actions", "db", "redis", "proxy"):
        assert f"  {service}:" in config
    assert "REDIS_URL: redis://redis:6379/0" in config


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
    assert services["rasa"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["rasa"]["environment"]["DATABASE_URL"].startswith("postgresql://")
