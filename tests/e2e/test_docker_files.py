"""The Docker image's files: the health check asks the configured port, and the build
context leaves out what the image does not need (a built .venv is hundreds of MB)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).parents[2]


def _healthcheck() -> ModuleType:
    path = REPO / "deploy" / "docker" / "healthcheck.py"
    spec = importlib.util.spec_from_file_location("docker_healthcheck", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("server", "url"),
    [
        pytest.param("server: {listen: 0.0.0.0:9200}\n", "http://127.0.0.1:9200/healthz", id="any"),
        pytest.param("server: {listen: '[::]:9300'}\n", "http://[::1]:9300/healthz", id="any-v6"),
        pytest.param("server: {listen: 10.0.0.5:9108}\n", "http://10.0.0.5:9108/healthz", id="ip"),
        pytest.param("", "http://127.0.0.1:9108/healthz", id="default"),
    ],
)
def test_healthcheck_asks_the_configured_port(server: str, url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(server + "sites:\n  - {name: a, url: 'http://127.0.0.1/'}\n")
    assert _healthcheck().healthz_url(str(config)) == url


def test_healthcheck_reads_the_image_config() -> None:
    url = _healthcheck().healthz_url(str(REPO / "deploy" / "docker" / "config.yaml"))
    assert url == "http://127.0.0.1:9108/healthz"


def test_dockerignore_keeps_only_what_the_dockerfile_copies() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    kept = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {
        line.split()[1].rstrip("/")
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert all(any(c == k or c.startswith(k + "/") for k in kept) for c in copied), copied
