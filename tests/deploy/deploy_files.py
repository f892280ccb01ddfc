"""The deployment files as data: docker-compose.yml interpolated as docker compose does it, the
Dockerfile's instructions, and the names of the environment variables the settings read."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS_SOURCES = [REPO / "webapp" / "settings.py", REPO / "webapp" / "celery.py"]
# Set for an app container but read by something other than the settings (each says by what).
NOT_SETTINGS = {
    "WEB_CONCURRENCY": REPO / "docker" / "gunicorn.conf.py",
    "WEB_NICE": REPO / "docker" / "gunicorn.conf.py",
}

# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`, `$NAME`, `$$`
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """What docker compose makes of `value` (a parsed YAML tree) with `env` as its .env and shell."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, found = match.group("op"), match.group("arg"), env.get(name)
        unset = found is None or (found == "" and op and op.startswith(":"))
        if op in (":?", "?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return found or ""

    return _VARIABLE.sub(substitute, value)


def variables_used(value) -> set[str]:
    """Every variable that `value` (a parsed YAML tree) interpolates."""
    if isinstance(value, dict):
        return set().union(*(variables_used(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(variables_used(v) for v in value)) if value else set()
    if not isinstance(value, str):
        return set()
    return {m.group("name") or m.group("bare") for m in _VARIABLE.finditer(value) if m.group(0) != "$$"}


def settings_variables() -> set[str]:
    """The names of the environment variables webapp's settings read (env_str("NAME", ...), os.environ...)."""
    names: set[str] = set()
    for path in SETTINGS_SOURCES:
        text = path.read_text()
        names |= set(re.findall(r"\benv_(?:str|bool|int|float|list|url|path)\(\s*\"([A-Z0-9_]+)\"", text))
        names |= set(re.findall(r"os\.environ(?:\.get|\.setdefault)?[(\[]\s*\"([A-Z0-9_]+)\"", text))
    return names


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", arguments):
                env[name] = value.strip('"')
    return env
