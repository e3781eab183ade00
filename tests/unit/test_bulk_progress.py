"""Progress bars: on where a person watches, off on request, never breaking a load."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from dataflow_nb.bulk import progress
from dataflow_nb.bulk.progress import Progress, wanted


def test_explicit_setting_wins_and_the_environment_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wanted(True) is True
    assert wanted(False) is False
    monkeypatch.setenv("DATAFLOW_PROGRESS", "0")
    assert wanted(True) is False


def test_default_is_quiet_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAFLOW_PROGRESS", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert wanted(None) is False


def test_text_bar_counts_rows_and_megabytes(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(True, description="load", total_rows=None, total_bytes=5_000_000)
    bar.update(1_500, 2_000_000)
    bar.close()
    err = capsys.readouterr().err
    assert "load" in err and "1.50k rows" in err and "2/5 MB" in err


def test_notebook_without_ipywidgets_falls_back_to_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails, as when it is not installed
    bar = Progress(True, description="nb", total_rows=10, total_bytes=None)
    bar.update(10)
    bar.close()
    assert "10.0/10.0" in capsys.readouterr().err


def test_a_broken_bar_never_breaks_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    bar = Progress(True, description="x", total_rows=1, total_bytes=None)

    calls: list[str] = []

    class Broken:
        def update(self, *_: Any) -> None:
            calls.append("update")
            raise RuntimeError("display gone")

        def close(self) -> None:
            calls.append("close")

    bar._bar = Broken()
    bar.update(1)  # swallowed: the bar switches itself off
    bar.update(1)
    bar.close()
    assert calls == ["update"]  # after the failure the broken display is never touched again
