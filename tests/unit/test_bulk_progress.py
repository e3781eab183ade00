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


def test_a_file_bar_has_a_total_in_bytes_with_the_rows_beside_it(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(True, description="load", total_rows=None, total_bytes=5_000_000)
    bar.update(1_500, 2_000_000)
    bar.close()
    err = capsys.readouterr().err
    assert "load:  40%" in err and "2.00MB/5.00MB" in err and "1,500 rows" in err
    assert "load: 100%" in err  # a load that wrote its rows read the whole file


def test_rows_are_whole_numbers_with_a_total_when_known(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(True, description="frame", total_rows=16, total_bytes=None)
    bar.update(16)
    bar.close()
    err = capsys.readouterr().err
    assert "16/16 rows" in err and "16.0" not in err and "100%" in err


def test_a_count_without_any_total_shows_no_empty_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(True, description="stream", total_rows=None, total_bytes=0)
    bar.update(2_500_000)
    bar.close()
    err = capsys.readouterr().err
    assert "2,500,000 rows" in err and "0/0" not in err


def test_a_rolled_back_load_ends_red_saying_so(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(True, description="load", total_rows=None, total_bytes=5_000_000)
    bar.update(1_500, 2_000_000)
    bar.close(ok=False)
    final = capsys.readouterr().err.split("\r")[-1]
    assert "load: rolled back, 0 rows written:  40%" in final
    assert "\x1b[31m" in final  # tqdm's red


def test_notebook_without_ipywidgets_falls_back_to_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails, as when it is not installed
    bar = Progress(True, description="nb", total_rows=10, total_bytes=None)
    bar.update(10)
    bar.close()
    assert "10/10 rows" in capsys.readouterr().err


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
