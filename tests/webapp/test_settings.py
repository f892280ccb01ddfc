"""Settings come from the environment: production is safe by default, mistakes stop the start."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest



@pytest.fixture
def bare_env(repo_root, tmp_path) -> dict[str, str]:
    """Only what Python needs; none of the test suite's settings variables."""
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(repo_root), "HOME": str(tmp_path),
            "VAR_DIR": str(tmp_path / "var")}


@pytest.fixture
def production_env(bare_env) -> dict[str, str]:
    return {**bare_env, "SECRET_KEY": secrets.token_urlsafe(50)[:50], "DEBUG": "0", "ALLOWED_HOSTS": "example.com",
            "CSRF_TRUSTED_ORIGINS": "https://example.com"}


def manage(repo_root, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=120)


def settings_in(repo_root, env, *names) -> dict:
    code = ("import json, django.conf as c; s = c.settings; "
            f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}, default=str))")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, env={**env, "DJANGO_SETTINGS_MODULE":
                          "webapp.settings"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_check_deploy_is_clean_with_a_production_environment(repo_root, production_env):
    done = manage(repo_root, production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_it_refuses_to_start_without_debug_and_without_a_secret_key(repo_root, bare_env):
    done = manage(repo_root, {**bare_env, "DEBUG": "0"}, "check")
    assert done.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in done.stderr


def test_debug_defaults_to_off(repo_root, bare_env):
    values = settings_in(repo_root, {**bare_env, "SECRET_KEY": "k" * 60}, "DEBUG", "SESSION_COOKIE_SECURE",
                         "SECURE_SSL_REDIRECT", "ALLOWED_HOSTS")
    assert values == {"DEBUG": False, "SESSION_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
                      "ALLOWED_HOSTS": []}


def test_a_development_run_needs_only_debug(repo_root, bare_env, tmp_path):
    values = settings_in(repo_root, {**bare_env, "DEBUG": "1"}, "DEBUG", "SESSION_COOKIE_SECURE", "ALLOWED_HOSTS",
                         "MEDIA_ROOT", "DATABASES")
    assert values["DEBUG"] is True and values["SESSION_COOKIE_SECURE"] is False
    assert "localhost" in values["ALLOWED_HOSTS"]
    assert values["MEDIA_ROOT"] == str(tmp_path / "var" / "media")
    assert values["DATABASES"]["default"]["NAME"] == str(tmp_path / "var" / "db.sqlite3")


def test_a_misspelt_boolean_stops_the_start(repo_root, production_env):
    done = manage(repo_root, {**production_env, "DEBUG": "flase"}, "check")
    assert done.returncode != 0
    assert "DEBUG must be a boolean" in done.stderr


def test_the_hard_time_limit_must_exceed_the_soft_one(repo_root, production_env):
    done = manage(repo_root, {**production_env, "JOB_SOFT_TIME_LIMIT": "600", "JOB_HARD_TIME_LIMIT": "600"}, "check")
    assert done.returncode != 0
    assert "JOB_HARD_TIME_LIMIT (600) must be longer than JOB_SOFT_TIME_LIMIT" in done.stderr


def test_database_url_selects_postgresql(repo_root, production_env):
    values = settings_in(repo_root, {**production_env, "DATABASE_URL": "postgres://u:p@db.internal:5432/style"},
                         "DATABASES")
    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 5432, "style")


def test_the_web_tier_pools_its_postgresql_connections_and_workers_do_not(repo_root, production_env):
    postgres = {**production_env, "DATABASE_URL": "postgres://u:p@db.internal:5432/style"}
    web = settings_in(repo_root, {**postgres, "DB_POOL_SIZE": "10"}, "DATABASES")["DATABASES"]["default"]
    assert web["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 10, "timeout": 10.0}
    assert web["CONN_MAX_AGE"] == 0
    worker = settings_in(repo_root, postgres, "DATABASES")["DATABASES"]["default"]
    assert "pool" not in worker.get("OPTIONS", {})
    sqlite = settings_in(repo_root, {**production_env, "DB_POOL_SIZE": "10"}, "DATABASES")["DATABASES"]["default"]
    assert "pool" not in sqlite["OPTIONS"]


def test_s3_bucket_switches_the_default_storage_to_s3(repo_root, production_env):
    values = settings_in(repo_root, {**production_env, "S3_BUCKET": "results", "S3_ENDPOINT_URL":
                                     "https://minio.internal:9000"}, "STORAGES", "S3_ADDRESSING_STYLE", "S3_CHECKSUMS")
    default = values["STORAGES"]["default"]
    assert default["BACKEND"] == "webapp.jobs.bucket.BucketStorage"
    assert default["OPTIONS"]["bucket_name"] == "results"
    assert default["OPTIONS"]["endpoint_url"] == "https://minio.internal:9000"
    assert default["OPTIONS"]["default_acl"] is None
    # A self-hosted server: the bucket in the path, checksums only where S3 requires them.
    assert (values["S3_ADDRESSING_STYLE"], values["S3_CHECKSUMS"]) == ("path", "when_required")


def test_aws_itself_lets_botocore_choose_the_addressing_style(repo_root, production_env):
    values = settings_in(repo_root, {**production_env, "S3_BUCKET": "results", "S3_REGION": "eu-west-1"},
                         "S3_ADDRESSING_STYLE")
    assert values["S3_ADDRESSING_STYLE"] == "auto"


@pytest.mark.parametrize("name, value", [("S3_CHECKSUMS", "always"), ("S3_ADDRESSING_STYLE", "dns")])
def test_a_wrong_s3_choice_stops_the_start(repo_root, production_env, name, value):
    done = manage(repo_root, {**production_env, "S3_BUCKET": "results", name: value}, "check")
    assert done.returncode != 0 and name in done.stderr


def test_the_file_system_is_the_default_storage(settings):
    assert settings.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


def test_the_filesystem_broker_keeps_its_folders_under_var(repo_root, bare_env, tmp_path):
    code = "import json; from webapp.celery import app; print(json.dumps(app.conf.broker_transport_options))"
    env = {**bare_env, "DEBUG": "1", "CELERY_BROKER_URL": "filesystem://"}
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout)
    broker = tmp_path / "var" / "broker"
    assert options["data_folder_in"] == options["data_folder_out"] == str(broker / "queue")
    assert options["processed_folder"] == str(broker / "processed")
    assert (broker / "queue").is_dir() and (broker / "control").is_dir()


def test_with_redis_sessions_are_read_from_it_and_jobs_are_pushed_through_it(repo_root, production_env):
    with_redis = settings_in(repo_root, {**production_env, "REDIS_URL": "redis://cache.example:6379/0"},
                             "SESSION_ENGINE", "CACHES", "LIVE_UPDATES_URL")
    assert with_redis["SESSION_ENGINE"] == "django.contrib.sessions.backends.cached_db"
    assert with_redis["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert with_redis["CACHES"]["default"]["LOCATION"] == with_redis["LIVE_UPDATES_URL"] == "redis://cache.example:6379/0"
    without = settings_in(repo_root, production_env, "CACHES", "LIVE_UPDATES_URL")
    assert without["LIVE_UPDATES_URL"] is None  # the pages poll
    assert without["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
