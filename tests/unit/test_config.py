"""relay.config: defaults < TOML file < RELAY_* environment < flags; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.cli import main
from relay.config import DEFAULT_API_PORT, Config, ConfigError, load_config


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: the ~/.relay/relay.toml of whoever runs the tests is never read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def _toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_apply_when_nothing_is_given(home: Path) -> None:
    config = load_config({}, env={})
    assert config == Config()
    assert config.data_dir == home / ".relay"
    assert config.host == "127.0.0.1"
    assert config.api_port == DEFAULT_API_PORT == 8480
    assert config.free_ports is False
    assert config.log_format == "human"


def test_file_overrides_defaults(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", 'api_port = 9001\nlog_format = "json"\n')
    config = load_config({}, config_file=toml, env={})
    assert config.api_port == 9001
    assert config.log_format == "json"
    assert config.host == "127.0.0.1"


def test_file_in_data_dir_is_read_without_config_flag(tmp_path: Path) -> None:
    _toml(tmp_path / "data" / "relay.toml", "api_port = 9002\n")
    config = load_config({"data_dir": tmp_path / "data"}, env={})
    assert config.api_port == 9002


def test_config_flag_wins_over_the_data_dir_file(tmp_path: Path) -> None:
    _toml(tmp_path / "data" / "relay.toml", "api_port = 9002\n")
    chosen = _toml(tmp_path / "chosen.toml", "api_port = 9003\n")
    config = load_config({"data_dir": tmp_path / "data"}, config_file=chosen, env={})
    assert config.api_port == 9003


def test_env_overrides_file(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", 'api_port = 9001\nhost = "127.0.0.2"\n')
    config = load_config({}, config_file=toml, env={"RELAY_API_PORT": "9100"})
    assert config.api_port == 9100
    assert config.host == "127.0.0.2"


def test_flags_override_env_and_file(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", 'api_port = 9001\nlog_level = "DEBUG"\n')
    env = {"RELAY_API_PORT": "9100", "RELAY_LOG_LEVEL": "WARNING"}
    config = load_config({"api_port": 9200}, config_file=toml, env=env)
    assert config.api_port == 9200
    assert config.log_level == "WARNING"


def test_flags_given_as_none_are_ignored() -> None:
    config = load_config({"api_port": None, "log_format": None}, env={"RELAY_LOG_FORMAT": "json"})
    assert config.api_port == DEFAULT_API_PORT
    assert config.log_format == "json"


def test_env_data_dir_locates_the_data_dir_file(tmp_path: Path) -> None:
    _toml(tmp_path / "data" / "relay.toml", "api_port = 9004\n")
    config = load_config({}, env={"RELAY_DATA_DIR": str(tmp_path / "data")})
    assert config.data_dir == tmp_path / "data"
    assert config.api_port == 9004


def test_unknown_key_in_file_is_an_error_naming_it(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", "api_prot = 9001\n")
    with pytest.raises(ConfigError, match="api_prot"):
        load_config({}, config_file=toml, env={})


def test_env_style_key_in_file_is_an_unknown_key(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", "RELAY_API_PORT = 9001\n")
    with pytest.raises(ConfigError, match="RELAY_API_PORT"):
        load_config({}, config_file=toml, env={})


def test_table_in_file_is_an_unknown_key(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", "[api]\nport = 9001\n")
    with pytest.raises(ConfigError, match="'api'"):
        load_config({}, config_file=toml, env={})


def test_dashed_key_in_file_means_the_underscored_field(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", "api-port = 9005\n")
    assert load_config({}, config_file=toml, env={}).api_port == 9005


def test_unrelated_environment_is_ignored() -> None:
    config = load_config({}, env={"PATH": "/bin", "API_PORT": "1", "relay_api_port": "2"})
    assert config.api_port == DEFAULT_API_PORT


def test_non_numeric_port_in_env_is_an_error() -> None:
    with pytest.raises(ConfigError, match="api_port"):
        load_config({}, env={"RELAY_API_PORT": "abc"})


def test_non_numeric_port_in_file_is_an_error(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", 'api_port = "abc"\n')
    with pytest.raises(ConfigError, match="api_port"):
        load_config({}, config_file=toml, env={})


def test_boolean_port_in_file_is_an_error(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", "api_port = true\n")
    with pytest.raises(ConfigError, match="api_port"):
        load_config({}, config_file=toml, env={})


def test_port_outside_0_to_65535_is_an_error() -> None:
    with pytest.raises(ConfigError, match="api_port"):
        load_config({}, env={"RELAY_API_PORT": "70000"})


def test_unparseable_boolean_is_an_error() -> None:
    with pytest.raises(ConfigError, match="free_ports"):
        load_config({}, env={"RELAY_FREE_PORTS": "maybe"})


def test_unknown_log_format_is_an_error() -> None:
    with pytest.raises(ConfigError, match="log_format"):
        load_config({"log_format": "xml"}, env={})


def test_unknown_log_level_is_an_error() -> None:
    with pytest.raises(ConfigError, match="log_level"):
        load_config({}, env={"RELAY_LOG_LEVEL": "LOUD"})


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    toml = _toml(tmp_path / "broken.toml", "api_port = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config({}, config_file=toml, env={})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_config({}, config_file=tmp_path / "absent.toml", env={})


def test_cli_reports_a_config_error_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = _toml(tmp_path / "relay.toml", "api_prot = 9001\n")
    assert main(["up", "--data-dir", str(tmp_path / "d"), "--config", str(toml)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("relay: ")
    assert "api_prot" in err


def test_free_ports_makes_port_return_0() -> None:
    config = load_config({"free_ports": True}, env={})
    assert config.port(DEFAULT_API_PORT) == 0
    assert config.port(69) == 0


def test_without_free_ports_port_returns_the_default() -> None:
    assert load_config({}, env={}).port(DEFAULT_API_PORT) == DEFAULT_API_PORT


@pytest.mark.parametrize(("raw", "expected"), [("yes", True), ("1", True), ("off", False)])
def test_free_ports_from_env_accepts_boolean_words(raw: str, expected: bool) -> None:
    assert load_config({}, env={"RELAY_FREE_PORTS": raw}).free_ports is expected


def test_data_dir_flag_expands_tilde(home: Path) -> None:
    assert load_config({"data_dir": Path("~/state")}, env={}).data_dir == home / "state"


def test_data_dir_env_expands_tilde(home: Path) -> None:
    assert load_config({}, env={"RELAY_DATA_DIR": "~/state"}).data_dir == home / "state"


def test_data_dir_in_file_expands_tilde(home: Path, tmp_path: Path) -> None:
    toml = _toml(tmp_path / "relay.toml", 'data_dir = "~/state"\n')
    assert load_config({}, config_file=toml, env={}).data_dir == home / "state"


def test_config_is_frozen() -> None:
    config = load_config({}, env={})
    with pytest.raises(AttributeError):
        config.api_port = 1  # type: ignore[misc]
