"""Several machines (README, "Several machines"), read as docker compose reads them: the central host
(docker-compose.yml + docker/compose.central.yml: a bucket in MinIO, PostgreSQL, Redis and MinIO open
to the workers) and a GPU worker machine (docker/compose.worker.yml: only a worker, pointed at them)."""

from __future__ import annotations

import copy

import pytest
import yaml

from deploy_files import NOT_SETTINGS, REPO, MissingVariable, interpolate, settings_variables, variables_used
from test_compose_file import environment

CENTRAL_ENV = {"SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "pw-123", "REDIS_PASSWORD": "redis-pw",
               "S3_ACCESS_KEY_ID": "minio-user", "S3_SECRET_ACCESS_KEY": "minio-secret"}
WORKER_ENV = {"WORKER_HOST": "gpu-box-2", "SECRET_KEY": "k" * 50, "DATABASE_URL": "postgres://s:p@central:5432/s",
              "REDIS_URL": "redis://:pw@central:6379/0", "S3_BUCKET": "stylize", "S3_ACCESS_KEY_ID": "key",
              "S3_SECRET_ACCESS_KEY": "secret", "S3_ENDPOINT_URL": "http://central:9000"}


def merge(base, override):
    """docker compose's merge of an override file: mappings merge key by key, the rest is replaced
    (ports are added to)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if key == "ports" and key in base:
                merged[key] = [*base[key], *value]
            else:
                merged[key] = merge(base[key], value) if key in base else value
        return merged
    return copy.deepcopy(override)


@pytest.fixture(scope="module")
def central_raw() -> dict:
    return merge(yaml.safe_load((REPO / "docker-compose.yml").read_text()),
                 yaml.safe_load((REPO / "docker" / "compose.central.yml").read_text()))


@pytest.fixture(scope="module")
def central(central_raw) -> dict:
    return interpolate(central_raw, CENTRAL_ENV)


@pytest.fixture(scope="module")
def worker_raw() -> dict:
    return yaml.safe_load((REPO / "docker" / "compose.worker.yml").read_text())


@pytest.fixture(scope="module")
def worker_host(worker_raw) -> dict:
    return interpolate(worker_raw, WORKER_ENV)


APP = ("migrate", "web", "live", "worker", "reconciler")


@pytest.mark.parametrize("name", APP)
def test_the_central_hosts_app_services_keep_files_in_the_minio_bucket_not_a_shared_folder(central, name):
    env = environment(central["services"][name])
    assert (env["S3_BUCKET"], env["S3_ENDPOINT_URL"], env["MEDIA_SHARED"]) == ("stylize", "http://minio:9000", "0")
    assert (env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]) == ("minio-user", "minio-secret")
    assert env["REDIS_URL"] == "redis://:redis-pw@redis:6379/0"
    unknown = set(env) - settings_variables() - set(NOT_SETTINGS)
    assert not unknown, unknown


def test_the_central_host_makes_a_private_bucket_before_the_app_starts(central):
    minio, bucket = central["services"]["minio"], central["services"]["minio-bucket"]
    assert minio["image"].startswith("minio/minio") and "minio" in central["volumes"]
    assert environment(minio)["MINIO_ROOT_USER"] == "minio-user"
    script = " ".join(bucket["entrypoint"])
    assert 'mc mb --ignore-existing "local/$S3_BUCKET"' in script and 'mc anonymous set none' in script
    for name in ("web", "worker", "reconciler"):
        assert central["services"][name]["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully"}


def test_the_central_host_opens_postgresql_redis_and_minio_to_the_workers_and_redis_has_a_password(central):
    ports = {name: central["services"][name]["ports"] for name in ("postgres", "redis", "minio")}
    assert ports == {"postgres": ["5432:5432"], "redis": ["6379:6379"], "minio": ["9000:9000"]}
    command = central["services"]["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == "redis-pw"
    assert "--appendonly" in command and "noeviction" in command


def test_the_central_host_needs_the_redis_password_and_the_buckets_keys(central_raw):
    for missing in ("REDIS_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        env = {k: v for k, v in CENTRAL_ENV.items() if k != missing}
        with pytest.raises(MissingVariable, match=missing):
            interpolate(central_raw, env)


def test_a_worker_machine_runs_only_a_gpu_worker_on_both_queues_under_a_unique_name(worker_host):
    assert list(worker_host["services"]) == ["worker"]
    worker = worker_host["services"]["worker"]
    assert worker["hostname"] == "gpu-box-2"  # %h in the node name: gpu@gpu-box-2
    command = worker["command"]
    flags = dict(zip(command[4::2], command[5::2]))
    assert (flags["-Q"], flags["-c"], flags["-n"]) == ("gpu,patches", "1", "gpu@%h")
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    assert worker["build"] == ".."  # the repository's Dockerfile, from docker/


def test_a_worker_machine_points_at_the_central_database_broker_and_bucket(worker_host):
    env = environment(worker_host["services"]["worker"])
    assert env["DATABASE_URL"] == "postgres://s:p@central:5432/s" and env["REDIS_URL"] == "redis://:pw@central:6379/0"
    assert (env["S3_BUCKET"], env["S3_ENDPOINT_URL"]) == ("stylize", "http://central:9000")
    assert "MEDIA_SHARED" not in env and "MEDIA_ROOT" not in env  # its files are never local
    assert not set(env) - settings_variables()


def test_a_worker_machine_must_be_given_its_name_the_central_services_and_the_bucket(worker_raw):
    for missing in ("WORKER_HOST", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID"):
        with pytest.raises(MissingVariable, match=missing):
            interpolate(worker_raw, {k: v for k, v in WORKER_ENV.items() if k != missing})


@pytest.mark.parametrize("example, files", [
    ("env.worker.example", ["docker/compose.worker.yml"]),
    ("env.central.example", ["docker-compose.yml", "docker/compose.central.yml"]),
])
def test_each_env_example_names_only_variables_its_compose_files_use(example, files):
    text = (REPO / "docker" / example).read_text()
    listed = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")}
    used = set().union(*(variables_used(yaml.safe_load((REPO / f).read_text())) for f in files))
    assert listed and listed <= used, sorted(listed - used)
