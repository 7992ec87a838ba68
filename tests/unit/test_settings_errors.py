"""A mistake on the command line or in the settings is one line naming the setting, its source and what is
expected; exit status 2; no traceback unless ``--debug`` (docs/settings.md, "When something is wrong")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ksimkit.simulators.cli import check_serve_settings, main
from ksimkit.simulators.core.settings import SettingError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No KSIM_* of the outer run, and a working directory without ksim.toml."""
    import os

    for name in list(os.environ):
        if name.startswith("KSIM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``ksim`` with a serve that must never start; the one line it printed."""
    import ksimkit.simulators.server

    def never(settings: object) -> None:
        raise AssertionError("the server started despite the mistake")

    mp = pytest.MonkeyPatch()
    mp.setattr(ksimkit.simulators.server, "run_gunicorn", never)
    try:
        code = main(argv)
    finally:
        mp.undo()
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ksim: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_setting_port_not_a_number_in_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSIM_PORT", "abc")
    line = one_line_error(capsys, ["serve"])
    assert line == "ksim: port (environment variable KSIM_PORT): expected a whole number, got 'abc'"


def test_setting_port_not_a_number_in_ksim_toml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ksim.toml").write_text('[ksim]\nport = "nine"\n')
    assert (
        one_line_error(capsys, ["serve"]) == "ksim: port (ksim.toml [ksim] port): expected a whole number, got 'nine'"
    )


def test_setting_unknown_key_in_ksim_toml_suggests_the_known_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ksim.toml").write_text("[ksim]\nprot = 9000\n")
    line = one_line_error(capsys, ["serve"])
    assert line.startswith("ksim: ksim.toml [ksim] prot: unknown setting; did you mean port?")


def test_setting_config_broken_toml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ksim.toml").write_text("[ksim\nport = 1\n")
    assert one_line_error(capsys, ["serve"]).startswith("ksim: ksim.toml: not valid TOML: ")


def test_setting_config_missing_file_is_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert one_line_error(capsys, ["--config", "missing.toml", "serve"]) == "ksim: --config missing.toml: no such file"
    monkeypatch.setenv("KSIM_CONFIG", "gone.toml")
    assert one_line_error(capsys, ["serve"]) == "ksim: KSIM_CONFIG gone.toml: no such file"


def test_setting_config_without_a_ksim_table_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ksim.toml").write_text("port = 9000\n")  # the table forgotten: nothing would be read
    assert "has no [ksim] table" in one_line_error(capsys, ["serve"])


def test_setting_other_kinds_are_checked(tmp_path: Path) -> None:
    cases = {
        "KSIM_WORKERS": ("0", "workers", "at least 1"),
        "KSIM_PORT": ("70000", "port", "0..65535"),
        "KSIM_STRICT_CONTRACT": ("maybe", "strict_contract", "true or false"),
        "KSIM_LOG_LEVEL": ("loud", "log_level", "one of debug"),
        "KSIM_ACCESS_LOG": ("sometimes", "access_log", "true or false"),
    }
    for variable, (value, name, expected) in cases.items():
        with pytest.raises(SettingError) as caught:
            load_settings(env={variable: value})
        assert caught.value.name == name and caught.value.source == f"environment variable {variable}"
        assert expected in str(caught.value)
    settings = load_settings(env={"KSIM_PORT": "9000", "KSIM_ACCESS_LOG": "on"})
    assert (settings.port, settings.access_log, settings.source("port")) == (
        9000,
        True,
        "environment variable KSIM_PORT",
    )
    assert settings.source("host") == "default"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense", "expected a database URL such as sqlite:///"),
        ("mysql://u@h/db", "ksim stores state in SQLite or PostgreSQL"),
        ("sqlite:///no/such/dir/state.db", "the directory no/such/dir does not exist"),
        ("sqlite://", "in-memory SQLite"),
    ],
)
def test_setting_database_url_mistakes(capsys: pytest.CaptureFixture[str], url: str, says: str) -> None:
    line = one_line_error(capsys, ["serve", "--database-url", url])
    assert line.startswith("ksim: database_url (--database-url): ") and says in line, line
    assert not Path("no").exists()  # a missing directory is not created


def test_setting_database_url_unreachable_postgresql(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSIM_DATABASE_URL", f"postgresql://u:secret@127.0.0.1:{closed_port()}/ksim")
    line = one_line_error(capsys, ["serve"])
    assert line.startswith("ksim: database_url (environment variable KSIM_DATABASE_URL): cannot connect to ")
    assert "secret" not in line and "Connection refused" in line


def test_setting_database_url_postgresql_without_the_driver(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    line = one_line_error(capsys, ["serve", "--database-url", "postgresql://u@127.0.0.1/ksim"])
    assert "pip install 'ksimkit[postgresql]'" in line


def test_setting_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(capsys, ["serve", "--port", str(port), "--database-url", "sqlite:///state.db"])
    assert line == f"ksim: port (--port): 127.0.0.1:{port} is in use by another process; choose another port (--port)"


def test_setting_profile_path_and_default_timezone_are_checked(tmp_path: Path) -> None:
    settings = load_settings(
        env={"KSIM_PROFILE_PATH": str(tmp_path / "nope.yaml"), "KSIM_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    )
    with pytest.raises(SettingError) as caught:
        check_serve_settings(settings)
    assert caught.value.name == "profile_path" and caught.value.source == "environment variable KSIM_PROFILE_PATH"
    settings = load_settings(
        env={"KSIM_DEFAULT_TIMEZONE": "Mars/Olympus", "KSIM_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    )
    with pytest.raises(SettingError, match="IANA time zone"):
        check_serve_settings(settings)


def test_setting_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSIM_PORT", "abc")
    with pytest.raises(SettingError):
        main(["--debug", "serve"])


def test_serve_flags_are_checked_and_an_unknown_flag_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--prot", "9000"])
    assert caught.value.code == 2 and "did you mean --port?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--port", "nine"])
    assert "argument --port: expected a whole number, got 'nine'" in capsys.readouterr().err


def test_serve_help_has_text_and_defaults_for_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (
        ("--host", "default 127.0.0.1"),
        ("--port", "default 8080"),
        ("--workers", "default 2"),
        ("--database-url", "default sqlite:///.ksim/state.db"),
        ("--access-log", "default off"),
    ):
        assert flag in text and default in text, (flag, text)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
