"""docker-compose.yml, read as docker compose reads it (no Docker engine needed): the services, their
commands, health checks, volumes, the GPU, and an environment the settings module accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deploy_files import (NOT_SETTINGS, REPO, MissingVariable, dockerfile_env, interpolate, parse_dockerfile,
                          settings_variables, variables_used)
from scripts import router

APP_SERVICES = ("web", "live", "worker")
WEB_GROUPS = ("web", "live")  # the two groups of web processes behind the router
LONG_RUNNING = ("router", "web", "live", "worker", "reconciler", "redis", "postgres")


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def volume_targets(service: dict) -> dict[str, str]:
    """{mount point: volume name} of the service's named-volume mounts."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def depends_on(service: dict) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in (service.get("depends_on") or {}).items()}


def test_it_runs_router_web_live_worker_redis_postgres_and_a_one_shot_migrate(compose):
    assert set(LONG_RUNNING) | {"migrate"} <= set(compose["services"])


def test_web_live_worker_and_migrate_run_the_one_image_built_here(compose):
    names = ("web", "live", "worker", "migrate")
    images = {compose["services"][name]["image"] for name in names}
    assert len(images) == 1
    assert all(compose["services"][name]["build"] == "." for name in names)


@pytest.mark.parametrize("name", WEB_GROUPS)
def test_web_and_live_run_gunicorn_with_the_config_in_the_image_behind_the_router(compose, name):
    service = compose["services"][name]
    assert service["command"][0] == "gunicorn"
    config = service["command"][service["command"].index("--config") + 1]
    assert (REPO / config).is_file()
    assert not service.get("ports")  # only the router is published
    assert environment(service)["WEB_CONCURRENCY"] == {"web": "3", "live": "1"}[name]
    # The pages group yields to the live group when the cores are busy, as where the launchers run it.
    assert environment(service).get("WEB_NICE", "0") == router.group_env({}, {"web": "pages", "live": "live"}[name])[
        "WEB_NICE"]


def test_the_router_renders_the_template_with_the_two_groups_and_web_and_live_trust_its_address(compose):
    import ipaddress

    service = compose["services"]["router"]
    assert service["image"].startswith("nginx:")
    (mount,) = service["volumes"]
    source, target, mode = mount.split(":")
    assert (REPO / source).resolve() == router.TEMPLATE and mode == "ro"
    env = environment(service)
    # The nginx image fills in ${NAME} from its environment, templates/X.template -> $NGINX_ENVSUBST_OUTPUT_DIR/X.
    assert target == "/etc/nginx/templates/nginx.conf.template" and env["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    rendered = router.render(env)  # a KeyError if compose leaves a placeholder unset
    assert "server web:8000;" in rendered and "server live:8000;" in rendered and "listen 8000;" in rendered
    assert depends_on(service) == {"web": "service_healthy", "live": "service_healthy"}
    assert all(spec["restart"] is True for spec in service["depends_on"].values())
    address = ipaddress.ip_address(service["networks"]["default"]["ipv4_address"])
    (subnet,) = compose["networks"]["default"]["ipam"]["config"]
    assert address in ipaddress.ip_network(subnet["subnet"])
    for name in WEB_GROUPS:
        assert str(address) in environment(compose["services"][name])["TRUSTED_PROXY_ADDRESSES"].split(","), name


def test_the_gunicorn_config_serves_the_asgi_application_with_uvicorn_workers_and_servestatic():
    config: dict = {"__file__": str(REPO / "docker" / "gunicorn.conf.py")}
    exec((REPO / "docker" / "gunicorn.conf.py").read_text(), config)
    module, _, attribute = config["wsgi_app"].partition(":")
    source = (REPO / (module.replace(".", "/") + ".py")).read_text()
    assert f"{attribute} = ServeStaticASGI(" in source
    assert config["worker_class"] == "uvicorn_worker.UvicornWorker"
    assert config["bind"].endswith(":8000")
    requirements = (REPO / "docker" / "requirements.txt").read_text()
    assert all(name in requirements for name in ("gunicorn", "uvicorn", "uvicorn-worker", "servestatic"))


def test_the_worker_takes_jobs_from_the_gpu_queue_one_at_a_time_in_a_prefork_pool(compose):
    command = compose["services"]["worker"]["command"]
    assert command[:4] == ["celery", "-A", "webapp", "worker"]
    flags = dict(zip(command[4::2], command[5::2]))
    assert flags["-Q"] == "gpu,patches"  # the patches pictures have a queue of their own
    assert flags["-c"] == "1"
    assert flags["--pool"] == "prefork"


def test_the_worker_reserves_an_nvidia_gpu(compose):
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] and device.get("driver", "nvidia") == "nvidia" for device in devices)


def test_redis_keeps_an_append_only_file_in_a_volume_and_never_evicts(compose):
    redis = compose["services"]["redis"]
    command = redis["command"] if isinstance(redis["command"], list) else redis["command"].split()
    options = dict(zip(command[1::2], command[2::2]))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert volume_targets(redis)["/data"] in compose["volumes"]


def test_postgres_keeps_its_data_in_a_volume(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert volume_targets(postgres)["/var/lib/postgresql/data"] in compose["volumes"]


def test_web_and_worker_share_one_media_volume_at_media_root(compose):
    for name in APP_SERVICES:
        service = compose["services"][name]
        media_root = environment(service)["MEDIA_ROOT"]
        assert volume_targets(service).get(media_root) == "media", name
        assert environment(service)["MEDIA_SHARED"] == "1", name  # the worker would refuse to start otherwise
    assert "media" in compose["volumes"]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_health_check_and_restarts(compose, name):
    check = compose["services"][name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1
    assert check.get("interval") and check.get("retries")
    assert compose["services"][name].get("restart") == "unless-stopped"


@pytest.mark.parametrize("name", ("router", *WEB_GROUPS))
def test_the_web_health_checks_ask_for_the_health_page(compose, name):
    assert "http://127.0.0.1:8000/health/" in " ".join(compose["services"][name]["healthcheck"]["test"])
    # The health check's Host header is 127.0.0.1: the settings must allow it whatever .env says.
    assert "127.0.0.1" in environment(compose["services"]["web"])["ALLOWED_HOSTS"].split(",")


def test_the_worker_health_check_pings_this_worker_by_name(compose):
    worker = compose["services"]["worker"]
    name = worker["command"][worker["command"].index("-n") + 1]
    assert name == "gpu@%h"
    assert "inspect ping -d gpu@$HOSTNAME" in " ".join(worker["healthcheck"]["test"])


def test_web_and_worker_start_after_migrations_on_a_healthy_database_and_broker(compose):
    for name in APP_SERVICES:
        assert depends_on(compose["services"][name]) == {
            "migrate": "service_completed_successfully", "postgres": "service_healthy", "redis": "service_healthy"}
    migrate = compose["services"]["migrate"]
    assert migrate["command"][:3] == ["python", "manage.py", "migrate"]
    assert depends_on(migrate) == {"postgres": "service_healthy"}
    assert migrate["restart"] == "no"  # or it would run again every time it finished


def test_the_reconciler_runs_a_pass_every_15_seconds_with_the_apps_settings_after_migrations(compose):
    reconciler = compose["services"]["reconciler"]
    command = reconciler["command"]
    assert command[:3] == ["python", "manage.py", "reconcile_jobs"]
    assert command[command.index("--every") + 1] == "15"  # a lost job resumes within STUCK_AFTER_SECONDS + 15 s
    assert (REPO / "webapp" / "management" / "commands" / "reconcile_jobs.py").is_file()
    assert reconciler["image"] == compose["services"]["worker"]["image"]
    assert environment(reconciler) == environment(compose["services"]["worker"])
    assert depends_on(reconciler) == depends_on(compose["services"]["worker"])
    # Its health check reads the file each pass touches.
    alive = command[command.index("--alive-file") + 1]
    assert alive in " ".join(reconciler["healthcheck"]["test"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_variable_set_for_web_and_worker_is_one_the_settings_read(compose, name):
    read = settings_variables()
    assert {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT"} <= read  # the grep works
    unknown = set(environment(compose["services"][name])) - read - set(NOT_SETTINGS)
    assert not unknown, f"{name} sets variables that webapp/settings.py does not read: {sorted(unknown)}"
    for variable, reader in NOT_SETTINGS.items():
        assert variable in reader.read_text()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_required_settings_are_set_for_production(compose, name):
    env = environment(compose["services"][name])
    for required in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"):
        assert env[required], required
    assert env["DEBUG"] == "0"
    assert env["DATABASE_URL"].startswith("postgres://stylize:pw-123@postgres:5432/")
    assert env["REDIS_URL"] == "redis://:redis-pw-456@redis:6379/0"


def test_redis_asks_for_the_password_that_redis_url_carries(compose):
    redis = compose["services"]["redis"]
    options = dict(zip(redis["command"][1::2], redis["command"][2::2]))
    assert options["--requirepass"] == "redis-pw-456"
    assert redis["environment"]["REDISCLI_AUTH"] == "redis-pw-456"  # the health check's redis-cli
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_the_routers_port_is_published_on_the_hosts_loopback_only(compose):
    (port,) = compose["services"]["router"]["ports"]
    assert port == "127.0.0.1:8000:8000"


def test_secret_key_and_the_database_and_redis_passwords_must_come_from_the_env_file(compose_raw):
    for missing in ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        env = {"SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "pw-123", "REDIS_PASSWORD": "redis-pw-456"}
        del env[missing]
        with pytest.raises(MissingVariable, match=missing):
            interpolate(compose_raw, env)


def test_the_env_example_names_each_variable_a_deployment_sets():
    example = (REPO / "docker" / "env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"} <= listed
    import yaml

    used = variables_used(yaml.safe_load((REPO / "docker-compose.yml").read_text()))
    assert listed <= used, f"env.example lists variables the compose file ignores: {sorted(listed - used)}"


def test_the_settings_load_and_pass_the_deploy_checks_with_the_web_containers_environment(compose, tmp_path):
    """The image's ENV, then the compose file's environment, as a container gets them."""
    container_env = {**dockerfile_env(parse_dockerfile((REPO / "Dockerfile").read_text())),
                     **environment(compose["services"]["web"])}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO), **container_env}
    script = (
        "import json, django\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "call_command('check', deploy=True, fail_level='WARNING')\n"
        "db = settings.DATABASES['default']\n"
        "print(json.dumps({'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS, 'engine': db['ENGINE'],\n"
        "    'db_host': db['HOST'], 'broker': settings.CELERY_BROKER_URL, 'media': str(settings.MEDIA_ROOT),\n"
        "    'static': str(settings.STATIC_ROOT)}))\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded == {"debug": False, "hosts": ["localhost", "127.0.0.1"], "engine": "django.db.backends.postgresql",
                      "db_host": "postgres", "broker": "redis://:redis-pw-456@redis:6379/0", "media": "/data/media",
                      "static": "/app/staticfiles"}


def compose_command() -> list[str] | None:
    """docker compose (v2) or docker-compose, where one is installed: they validate without an engine."""
    import shutil

    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_command() is None, reason="neither `docker compose` nor docker-compose is installed")
def test_docker_compose_itself_accepts_the_file(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "pw",
           "REDIS_PASSWORD": "rpw"}
    run = subprocess.run([*compose_command(), "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
                          "config", "--quiet"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
