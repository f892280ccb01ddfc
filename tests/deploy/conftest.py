"""Fixtures of the deployment tests: the compose file and the Dockerfile, parsed."""

from __future__ import annotations

import secrets

import pytest
import yaml

from deploy_files import REPO, interpolate, parse_dockerfile


@pytest.fixture(scope="session")
def compose_raw() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def compose(compose_raw) -> dict:
    """The compose file as docker compose sees it with only the required variables in .env."""
    return interpolate(compose_raw, {"SECRET_KEY": secrets.token_urlsafe(50), "POSTGRES_PASSWORD": "pw-123",
                                     "REDIS_PASSWORD": "redis-pw-456"})


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())
