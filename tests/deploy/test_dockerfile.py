"""The Dockerfile and .dockerignore, read as text: base image, dependencies, static files, a user
that is not root, no secrets, and the command docker-compose.yml expects."""

from __future__ import annotations

import json
import re

from deploy_files import REPO, dockerfile_env, settings_variables


def keywords(dockerfile) -> list[str]:
    return [keyword for keyword, _ in dockerfile]


def arguments(dockerfile, keyword: str) -> list[str]:
    return [args for kw, args in dockerfile if kw == keyword]


def test_it_builds_on_python_3_11_slim_in_one_stage(dockerfile):
    assert arguments(dockerfile, "FROM") == ["python:3.11-slim"]
    assert dockerfile[0][0] == "FROM"


def test_it_installs_both_requirements_files_after_copying_only_them(dockerfile):
    installs = [args for args in arguments(dockerfile, "RUN") if "pip install" in args]
    assert len(installs) == 1
    assert "-r requirements.txt" in installs[0] and "-r docker/requirements.txt" in installs[0]
    # The dependency layer comes before the code is copied, so a code change does not reinstall torch.
    install_at = dockerfile.index(("RUN", installs[0]))
    copies_before = [args for kw, args in dockerfile[:install_at] if kw == "COPY"]
    assert all("requirements.txt" in args for args in copies_before) and copies_before
    assert ("COPY", ". .") in dockerfile[install_at:]


def test_it_collects_the_static_files_at_build_time_without_a_secret_key(dockerfile):
    collect = [args for args in arguments(dockerfile, "RUN") if "collectstatic" in args]
    assert collect and "DEBUG=1 python manage.py collectstatic --noinput" in collect[0]
    assert dockerfile_env(dockerfile)["STATIC_ROOT"].startswith("/")


def test_the_service_runs_as_a_user_that_is_not_root(dockerfile):
    users = arguments(dockerfile, "USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    last_user = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "USER")
    assert "RUN" not in keywords(dockerfile)[last_user:]  # nothing after it undoes it
    assert any("useradd" in args and users[-1] in args for args in arguments(dockerfile, "RUN"))


def test_python_writes_no_bytecode_and_does_not_buffer_its_logs(dockerfile):
    env = dockerfile_env(dockerfile)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_no_secret_is_baked_into_the_image(dockerfile):
    for keyword in ("ENV", "ARG"):
        for args in arguments(dockerfile, keyword):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY", args), args
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_the_image_sets_only_variables_that_python_pip_or_the_settings_read(dockerfile):
    read = settings_variables() | {"DJANGO_SETTINGS_MODULE"}
    for name in dockerfile_env(dockerfile):
        assert name.startswith(("PYTHON", "PIP_")) or name in read, name


def test_the_default_command_is_the_web_server_that_compose_runs(dockerfile, compose):
    command = json.loads(arguments(dockerfile, "CMD")[-1])
    assert command == compose["services"]["web"]["command"]
    assert "ENTRYPOINT" not in keywords(dockerfile)  # compose's commands run as written
    assert "8000" in arguments(dockerfile, "EXPOSE")


def test_the_build_context_leaves_out_the_virtualenv_local_data_and_git():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "var", ".env"} <= ignored
    assert not {"requirements.txt", "docker", "webapp", "stylize", "manage.py"} & ignored
