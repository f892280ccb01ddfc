"""Typed readers for settings that come from environment variables.

Each helper fails loudly (ImproperlyConfigured, naming the variable and the
value it got) instead of quietly falling back to a default: a typo in
`DEBUG=flase` must stop the process, not run production in some other mode.
An empty value counts as unset, so `FOO=` in an env file means "use the default".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from .numbers import finite_float

T = TypeVar("T")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()  # default meaning "there is no default: the variable must be set"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class EnvError(ImproperlyConfigured):
    """An environment variable is missing or does not parse; the message says which and why."""


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _default(name: str, default: T | _Required, hint: str = "") -> T:
    if default is REQUIRED:
        raise EnvError(f"environment variable {name} is required{hint}")
    return default  # type: ignore[return-value]


def env_str(name: str, default: str | None | _Required = REQUIRED, *, hint: str = "") -> str | None:
    """The text of `name`; `hint` is appended to the error when it is required and missing."""
    value = _raw(name)
    return _default(name, default, hint) if value is None else value


def env_bool(name: str, default: bool | _Required = REQUIRED) -> bool:
    """1/0, true/false, yes/no, on/off (any case); anything else is an error."""
    value = _raw(name)
    if value is None:
        return _default(name, default)
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvError(f"environment variable {name} must be a boolean (1/0, true/false, yes/no, on/off), "
                   f"not {value!r}")


def env_int(name: str, default: int | None | _Required = REQUIRED, *, min: int | None = None,
            max: int | None = None) -> int | None:
    value = _raw(name)
    if value is None:
        return _default(name, default)
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise EnvError(f"environment variable {name} must be a whole number, not {value!r}") from None
    _check_range(name, number, min, max)
    return number


def env_float(name: str, default: float | None | _Required = REQUIRED, *, min: float | None = None,
              max: float | None = None) -> float | None:
    value = _raw(name)
    if value is None:
        return _default(name, default)
    number = finite_float(value)
    if number is None:
        raise EnvError(f"environment variable {name} must be a finite number, not {value!r}")
    _check_range(name, number, min, max)
    return number


def env_list(name: str, default: Iterable[str] | _Required = REQUIRED) -> list[str]:
    """Comma-separated items, blanks around them dropped: `a.com, b.com` -> ['a.com', 'b.com']."""
    value = _raw(name)
    if value is None:
        return list(_default(name, default))
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str | None | _Required = REQUIRED, *,
            schemes: Iterable[str] | None = None) -> str | None:
    """A URL with a scheme (and one of `schemes` when given); `redis://host:6379/0`, `sqlite:///path`."""
    value = _raw(name)
    if value is None:
        return _default(name, default)
    check_url(name, value, schemes)
    return value


def check_url(name: str, value: str, schemes: Iterable[str] | None = None) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as exc:
        raise EnvError(f"environment variable {name} is not a valid URL ({exc}): {_redact(value)!r}") from None
    if not parts.scheme or "://" not in value:
        raise EnvError(f"environment variable {name} must be a URL such as scheme://host/..., "
                       f"not {_redact(value)!r}")
    allowed = list(schemes) if schemes is not None else None
    if allowed is not None and parts.scheme not in allowed:
        raise EnvError(f"environment variable {name} must use one of the schemes {', '.join(allowed)}, "
                       f"not {parts.scheme!r}")


def env_path(name: str, default: Path | _Required = REQUIRED) -> Path:
    """An absolute path (a relative one would depend on the directory the process starts in)."""
    value = _raw(name)
    if value is None:
        return Path(_default(name, default))
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise EnvError(f"environment variable {name} must be an absolute path, not {value!r}")
    return path


def _check_range(name: str, number: float, low: float | None, high: float | None) -> None:
    if low is not None and number < low:
        raise EnvError(f"environment variable {name} must be at least {low}, not {number}")
    if high is not None and number > high:
        raise EnvError(f"environment variable {name} must be at most {high}, not {number}")


def _redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return url
