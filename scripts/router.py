"""The web tier as production runs it: two groups of gunicorn processes behind nginx.

nginx (docker/router.conf.template) sends the requests that come by the thousand, a job page's
event stream and an API client's poll of a job's state, to a group of web processes of their own
("live"), and everything else (pages, uploads, downloads, the API) to the other ("pages"). Both
groups run the same application (docker/gunicorn.conf.py); the split keeps a burst of page loads,
each several ms of Python holding its process's GIL, from holding up the events and the polls
(README, "Live progress").

`make run` (scripts/run_local.py) and the load bench (bench/load_test.py) start it with these
functions; docker-compose.yml renders the same template with the nginx image's envsubst.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "docker" / "router.conf.template"
# ${UPPER_CASE} are ours; nginx's own variables ($http_host, $proxy_add_x_forwarded_for) stay.
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def nginx_binary() -> str | None:
    """nginx on PATH or where Debian puts it (/usr/sbin is not on every user's PATH); None if absent."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None)


def render(values: dict[str, str]) -> str:
    """The template with every placeholder filled in; a missing value is a KeyError naming it."""
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{TEMPLATE.name} needs a value for {name}")
        return str(values[name])
    return PLACEHOLDER.sub(fill, TEMPLATE.read_text())


@dataclass(frozen=True)
class WebTier:
    """Where each part listens: `listen` is the address people use; the groups on loopback."""

    listen: str  # host:port
    pages: str  # host:port of the pages group
    live: str  # host:port of the live group

    def router_command(self, run_dir: Path, nginx: str) -> list[str]:
        """nginx in the foreground with its config, pid file and temporary files in run_dir."""
        run_dir.mkdir(parents=True, exist_ok=True)
        config = run_dir / "nginx.conf"
        config.write_text(render({"RUN_DIR": str(run_dir), "LISTEN": self.listen,
                                  "PAGES_ADDRESS": self.pages, "LIVE_ADDRESS": self.live}))
        return [nginx, "-p", str(run_dir), "-c", str(config), "-e", "stderr", "-g", "daemon off;"]


def gunicorn_command(python: str, bind: str, workers: int | str, control_socket: Path | None = None) -> list[str]:
    """One group of web processes: the production config (docker/gunicorn.conf.py) with this
    address and number of processes. gunicorn 27+ opens a control socket (by default in
    ~/.gunicorn); control_socket keeps it somewhere of the caller's choosing."""
    argv = [python, "-m", "gunicorn", "-c", "docker/gunicorn.conf.py", "--bind", bind, "--workers", str(workers)]
    if control_socket is not None:
        argv += ["--control-socket", str(control_socket)]
    return argv


PAGES_NICENESS = 10  # docker/gunicorn.conf.py's WEB_NICE for the pages group


def group_env(env: dict[str, str], group: str, router_address: str = "127.0.0.1") -> dict[str, str]:
    """The environment of a group of web processes ("pages" or "live") behind the router: the
    router's address among the trusted proxies, so the login and sign-up limits count the client's
    address (X-Forwarded-For), not the router's; and the pages group below the live group."""
    trusted = [item for item in env.get("TRUSTED_PROXY_ADDRESSES", "").split(",") if item.strip()]
    if router_address not in trusted:
        trusted.append(router_address)
    return {**env, "TRUSTED_PROXY_ADDRESSES": ",".join(trusted),
            "WEB_NICE": str(PAGES_NICENESS if group == "pages" else 0)}
