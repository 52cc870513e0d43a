"""The ``kubedrf`` command's everyday surface: version, help, flag errors and log lines."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import pytest

from kubedrf import __version__
from kubedrf.cli import master
from kubedrf.cli.main import build_parser, main
from kubedrf.devcluster import cluster


def _master_flags() -> list[argparse.Action]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    master_parser: argparse.ArgumentParser = commands.choices["master"]
    return [a for a in master_parser._actions if a.dest != "help"]


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"kubedrf {__version__}"


def test_every_master_flag_has_help_with_its_unit_or_choices() -> None:
    for action in _master_flags():
        flag, helptext = action.option_strings[0], action.help or ""
        assert helptext, f"{flag} has no help"
        if action.default not in (None, False):
            assert "(default: %(default)s)" in helptext, f"{flag} does not say its default"
        if action.metavar == "DURATION":
            assert re.fullmatch(r"\d+(ms|s)", str(action.default)), f"{flag}: no unit"
        if action.metavar == "PORT":
            assert "TCP port" in helptext


def test_a_bad_flag_is_named_as_typed_and_points_to_the_settings_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["master", "--offer-timeout=-1s", "--metrics-port=70000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--offer-timeout: " in err and "--metrics-port: " in err
    assert "flags." not in err
    assert "docs/settings.md" in err


def _record(message: str, exc: bool = False) -> logging.LogRecord:
    record = logging.LogRecord("kubedrf.master", logging.WARNING, __file__, 1, message, (), None)
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
    return record


def test_text_logs_start_with_a_utc_timestamp() -> None:
    line = master.log_handler("text").format(_record("cycle failed"))
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING kubedrf\.master: ", line)
    assert line.endswith("cycle failed")


def test_json_logs_are_one_object_per_line_with_time_level_and_exception() -> None:
    line = master.log_handler("json").format(_record('quote " and\nnewline', exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "kubedrf.master"
    assert entry["message"] == 'quote " and\nnewline'
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry["time"])
    assert "ValueError: boom" in entry["exception"]


def test_dev_list_names_every_cluster_and_its_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cluster, "kwok_workdir", lambda: tmp_path)
    assert main(["dev", "list"]) == 0
    assert capsys.readouterr().out == ""
    (tmp_path / "clusters" / "a").mkdir(parents=True)
    (tmp_path / "clusters" / "a" / "kwok.yaml").write_text("{}")
    (tmp_path / "clusters" / "b").mkdir()
    assert main(["dev", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"a\t{tmp_path / 'clusters' / 'a' / 'kubeconfig.yaml'}"
    assert lines[1].startswith("b\t") and "incomplete" in lines[1]
