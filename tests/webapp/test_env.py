"""The environment helpers the settings are read with fail loudly on bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from webapp.env import (REQUIRED, EnvError, env_bool, env_float, env_int, env_list, env_path, env_str,
                        env_url)


def test_an_unset_variable_gives_the_default(monkeypatch):
    monkeypatch.delenv("STYLE_TEST_VAR", raising=False)
    assert env_str("STYLE_TEST_VAR", "fallback") == "fallback"
    assert env_int("STYLE_TEST_VAR", 3) == 3
    assert env_bool("STYLE_TEST_VAR", True) is True
    assert env_list("STYLE_TEST_VAR", ["a"]) == ["a"]


def test_an_empty_value_counts_as_unset(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", "  ")
    assert env_str("STYLE_TEST_VAR", "fallback") == "fallback"
    assert env_int("STYLE_TEST_VAR", 5) == 5


def test_a_required_variable_that_is_missing_names_itself(monkeypatch):
    monkeypatch.delenv("STYLE_TEST_VAR", raising=False)
    with pytest.raises(EnvError, match="STYLE_TEST_VAR is required"):
        env_str("STYLE_TEST_VAR", REQUIRED)


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                             ("0", False), ("False", False), ("no", False), ("off", False)])
def test_booleans_accept_the_usual_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("STYLE_TEST_VAR", value)
    assert env_bool("STYLE_TEST_VAR", not expected) is expected


@pytest.mark.parametrize("value", ["flase", "2", "y e s", "enabled"])
def test_it_rejects_a_boolean_it_cannot_read(monkeypatch, value):
    monkeypatch.setenv("STYLE_TEST_VAR", value)
    with pytest.raises(EnvError, match="STYLE_TEST_VAR must be a boolean"):
        env_bool("STYLE_TEST_VAR", False)


def test_it_rejects_an_integer_that_is_not_one(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", "12MB")
    with pytest.raises(EnvError, match="STYLE_TEST_VAR must be a whole number, not '12MB'"):
        env_int("STYLE_TEST_VAR", 1)


def test_integers_may_use_underscores(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", "20_000_000")
    assert env_int("STYLE_TEST_VAR", 1) == 20_000_000


def test_it_rejects_numbers_outside_their_range(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", "0")
    with pytest.raises(EnvError, match="at least 1"):
        env_int("STYLE_TEST_VAR", 5, min=1)
    monkeypatch.setenv("STYLE_TEST_VAR", "9.5")
    with pytest.raises(EnvError, match="at most 2"):
        env_float("STYLE_TEST_VAR", 1.0, max=2)


@pytest.mark.parametrize("value", ["nan", "inf", "one"])
def test_it_rejects_floats_that_are_not_finite_numbers(monkeypatch, value):
    monkeypatch.setenv("STYLE_TEST_VAR", value)
    with pytest.raises(EnvError, match="STYLE_TEST_VAR"):
        env_float("STYLE_TEST_VAR", 1.0)


def test_lists_are_comma_separated_and_trimmed(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", " example.com, .example.org ,,")
    assert env_list("STYLE_TEST_VAR", []) == ["example.com", ".example.org"]


def test_urls_need_a_scheme_and_an_allowed_one(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", "localhost:6379")
    with pytest.raises(EnvError, match="must be a URL"):
        env_url("STYLE_TEST_VAR", None)
    monkeypatch.setenv("STYLE_TEST_VAR", "amqp://localhost")
    with pytest.raises(EnvError, match="one of the schemes redis"):
        env_url("STYLE_TEST_VAR", None, schemes=("redis",))
    monkeypatch.setenv("STYLE_TEST_VAR", "redis://localhost:6379/1")
    assert env_url("STYLE_TEST_VAR", None, schemes=("redis",)) == "redis://localhost:6379/1"


def test_a_bad_url_is_reported_without_its_password(monkeypatch):
    monkeypatch.setenv("STYLE_TEST_VAR", "postgres://user:s3cret@db:notaport/name")
    with pytest.raises(EnvError) as error:
        env_url("STYLE_TEST_VAR", None)
    assert "s3cret" not in str(error.value)


def test_paths_must_be_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLE_TEST_VAR", "var/media")
    with pytest.raises(EnvError, match="absolute path"):
        env_path("STYLE_TEST_VAR", Path("/x"))
    monkeypatch.setenv("STYLE_TEST_VAR", str(tmp_path))
    assert env_path("STYLE_TEST_VAR", Path("/x")) == tmp_path
