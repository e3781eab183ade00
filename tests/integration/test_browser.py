"""The notebooks as a person sees them: JupyterLab on 127.0.0.1, the system's Chromium driven
by Playwright (no browser is downloaded), a notebook run from the Run menu.

It asserts what is visible — notebooks/04's three views (run ids, node names, the failed node's
error, both tenants' rows, the slow-query table at 1,000 px) and notebooks/01's charts with every
request off this machine refused — and saves screenshots under tests/artifacts/ (not committed).
The kernel uses an in-memory DuckDB.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable

pytestmark = pytest.mark.slow  # JupyterLab driven by Chromium

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "04-monitor-and-tenants.ipynb"
EXPLORE = "01-explore.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("DATAFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = int(os.environ.get("DATAFLOW_TEST_BROWSER_TIMEOUT_MS", "180000"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving a copy of notebooks/04; its URL with the token."""
    with serve_notebook(tmp_path, NOTEBOOK) as url:
        yield url


@pytest.fixture
def explore_lab(tmp_path: Path) -> Iterator[str]:
    """The same, serving notebooks/01 (the plots)."""
    with serve_notebook(tmp_path, EXPLORE) as url:
        yield url


@contextlib.contextmanager
def serve_notebook(tmp_path: Path, notebook: str) -> Iterator[str]:
    """A JupyterLab server on 127.0.0.1 serving a copy of ``notebook``; its URL with the token."""
    if not Path(CHROMIUM).is_file():
        unavailable(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    try:
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        unavailable(f"{exc.name} is missing: pip install -e '.[dev]'")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / notebook, work / notebook)
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")  # no user settings, no announcements
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    # Every cell stays in the page (JupyterLab 4 otherwise detaches cells scrolled out of view).
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--allow-root",
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):  # noqa: S310
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not answer: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        yield f"{base}/lab/tree/{notebook}?token={token}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()


def run_all_cells(page: Any, url: str) -> None:
    """Open the notebook at ``url`` and run it from the Run menu, as a person would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator(".jp-Notebook").wait_for()
    choose = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    with contextlib.suppress(PlaywrightTimeout):  # JupyterLab may ask for a kernel; its own is preselected
        choose.click(timeout=15_000)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def test_the_views_render_in_jupyterlab(lab: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)  # a loaded machine runs the notebook slowly
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            run_all_cells(page, lab)

            runs = page.locator(".dataflow-runs-view")
            tenants = page.locator(".dataflow-tenant-metrics-view")
            slow = page.locator(".dataflow-slow-queries-view")
            expect(tenants.locator(".dataflow-tenant-models")).to_be_visible()  # the last view rendered

            printed = (
                page.locator(".jp-OutputArea-output", has_text="failed in node 'check_stock'").text_content() or ""
            )
            failed_run = re.search(r"run ([0-9a-f]{32}) failed", printed)
            assert failed_run, printed
            run_ids = runs.locator(".dataflow-runs tbody tr td:first-child").all_inner_texts()
            assert len(run_ids) == 5 and all(re.fullmatch(r"[0-9a-f]{32}", r) for r in run_ids), run_ids
            assert failed_run.group(1) in run_ids

            timeline = runs.locator(".dataflow-timeline")
            expect(timeline).to_contain_text(failed_run.group(1))
            for node in ("add_order", "list_orders", "count_orders", "check_stock"):
                expect(timeline).to_contain_text(node)
            expect(timeline.locator(".dataflow-run-error")).to_contain_text(
                "ValueError: out of stock: quantity must be at most 10"
            )
            expect(timeline.locator(".dataflow-node-error")).to_have_count(1)

            tenant_rows = tenants.locator(".dataflow-tenants tbody tr").all_inner_texts()
            assert [row.split()[0] for row in tenant_rows] == ["acme", "globex"], tenant_rows
            expect(tenants.locator(".dataflow-tenant-models")).to_contain_text("Order")
            expect(slow.locator(".dataflow-slow-queries")).to_contain_text("SELECT")
            expect(slow.locator("pre")).to_be_visible()  # the plan asked for in the notebook

            with contextlib.suppress(PlaywrightTimeout):  # JupyterLab's news question would cover the views
                page.locator(".jp-toast-container").get_by_role("button", name="No", exact=True).click(timeout=2_000)
            page.screenshot(path=str(ARTIFACTS / "notebook-04.png"), full_page=True)

            # At 1,000 px the slow-query log reads as a table: one line per row, nothing off its side.
            page.set_viewport_size({"width": 1000, "height": 1000})
            sizes = slow.locator(".dataflow-slow-queries").evaluate(
                "t => ({right: t.querySelector('th:last-child').getBoundingClientRect().right,"
                " edge: t.closest('.jp-OutputArea-output').getBoundingClientRect().right,"
                " visible: t.parentElement.clientHeight,"
                " rows: [...t.querySelectorAll('tbody tr')].map(r => r.getBoundingClientRect().height)})"
            )
            assert sizes["right"] <= sizes["edge"], sizes  # the error column is inside the output, not cut off
            assert len(sizes["rows"]) >= 10 and max(sizes["rows"]) < 40, sizes  # one line per entry
            assert sizes["visible"] >= 10 * max(sizes["rows"]), sizes  # ten rows at once, not three
            expect(slow.locator(".dataflow-plan b")).to_contain_text("Plan of entry ")
            slow.locator(".dataflow-slow-queries").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "view-slow-queries-1000px.png"))  # the window, as seen
            page.set_viewport_size({"width": 1400, "height": 1000})
            for name, view in (("runs", runs), ("slow-queries", slow), ("tenants", tenants)):
                view.scroll_into_view_if_needed()
                view.screenshot(path=str(ARTIFACTS / f"view-{name}.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)  # what the browser showed
            raise
        finally:
            browser.close()


def test_the_charts_draw_without_a_network(explore_lab: str) -> None:
    """notebooks/01's two plots, with every request to another host than this one refused."""
    from urllib.parse import urlparse

    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    refused: list[str] = []

    def only_this_machine(route: Any) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", only_this_machine)
        try:
            run_all_cells(page, explore_lab)
            charts = page.locator(".jp-RenderedSVG img")
            expect(charts).to_have_count(2)
            expect(page.get_by_text("Error loading script")).to_have_count(0)
            expect(
                page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            ).to_have_count(0)
            for index in range(2):
                chart = charts.nth(index)
                chart.scroll_into_view_if_needed()
                size = chart.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
                assert size[0] and size[1] > 100 and size[2] > 100, size  # the SVG was drawn and decoded
                chart.screenshot(path=str(ARTIFACTS / f"chart-{index + 1}.png"))
            page.screenshot(path=str(ARTIFACTS / "notebook-01.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
