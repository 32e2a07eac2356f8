"""Settings: environment first, then the data dir's config.toml; bad config is one clear line."""

from __future__ import annotations

import pytest

from decomposer.calls.runtime import limits_for
from decomposer.core.config import Settings
from decomposer.core.errors import ConfigError


def settings_with(tmp_path, text: str, **env: str) -> Settings:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    return Settings.from_env({"DECOMPOSER_HOME": str(home), **env})


def test_defaults_without_a_config_file(tmp_path):
    s = Settings.from_env({"DECOMPOSER_HOME": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path / 'decomposer.db'}"
    assert (s.limits, s.reviewer, s.redis_url) == ({}, None, None)


def test_limits_and_reviewer_from_config(tmp_path):
    s = settings_with(
        tmp_path, '[limits.mistral]\nrps = 1\ntpm = 500000\n[review]\nreviewer = "carol"\n'
    )
    assert limits_for(s, "mistral").rps == 1.0 and limits_for(s, "mistral").tpm == 500000
    assert limits_for(s, "mistral", rps=3).rps == 3  # the command line wins
    assert limits_for(s, "openai").active is False
    assert s.reviewer == "carol"
    assert (
        settings_with(
            tmp_path, '[review]\nreviewer = "carol"\n', DECOMPOSER_REVIEWER="dave"
        ).reviewer
        == "dave"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits.mistral]\nrps = 'fast'\n", "values must be numbers"),
        ("[limits.mistral]\nburst = 3\n", "takes only rps and tpm"),
        ("[reveiw]\nreviewer = 'x'\n", "unknown section(s) reveiw"),
        ("[review]\nreviewer = 3\n", "reviewer must be a string"),
        ("this is not toml", "cannot read"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_with(tmp_path, text)


def test_bad_config_stops_the_cli_with_one_line(tmp_path, monkeypatch, cli):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text("[limits.mistral]\nrps = 'fast'\n")
    monkeypatch.setenv("DECOMPOSER_HOME", str(home))
    code, _, err = cli("tools")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
