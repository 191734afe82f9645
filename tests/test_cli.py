"""The ``callbridge`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import __version__
from bridge.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_bench_outside_a_checkout_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--calls", "10"]) == 2
    assert "source checkout" in capsys.readouterr().err


def test_unknown_serve_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--bogus"])
    assert info.value.code == 2


def test_bad_setting_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CALLBRIDGE_PORT", "eighty")
    assert main(["serve"]) == 2
    assert "CALLBRIDGE_PORT must be a number" in capsys.readouterr().err
