"""What a data engineer sees: `dagster dev` on loopback, driven by headless Debian Chromium.

The run is made first with `clinker run` against the same DAGSTER_HOME, so the UI must show the
asset groups, the plan's latest metadata and its checks. With CLINKER_UPDATE_SCREENSHOTS=1 the
screenshots are copied to docs/screenshots/ (the README shows them).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from clinker_pipeline_tests.helpers import REPO, dagster_process_env, venv_command

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "docs" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (.ci/run installs it: apt-get install chromium)")
    work = tmp_path_factory.mktemp("ui")
    env = dagster_process_env(work)
    run = subprocess.run(
        [venv_command("clinker"), "run"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    port = free_port()
    dagster = venv_command("dagster")
    server = subprocess.Popen(
        [dagster, "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=open(work / "dev.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(
                        f"dagster dev did not start: {(work / 'dev.log').read_text()[-2000:]}"
                    )
                time.sleep(1)
        yield url, work
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(dagster_ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        yield page
        browser.close()


def shoot(page, work: Path, name: str) -> None:
    path = work / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if os.getenv("CLINKER_UPDATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / name)


def dismiss_welcome(page) -> None:
    # the community dialog is shown once per browser profile, if at all
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Skip").click(timeout=5000)


@pytest.mark.timeout(420)
def test_asset_graph_shows_every_group(dagster_ui, page):
    from playwright.sync_api import expect

    url, work = dagster_ui
    page.goto(f"{url}/asset-groups")
    dismiss_welcome(page)
    for group in ("erp", "instance", "planning"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("fetching statuses")).to_have_count(0, timeout=30_000)
    shoot(page, work, "asset_graph.png")
    page.goto(f"{url}/locations/clinker_pipeline/asset-groups/planning")
    for asset in ("clinker_plan", "plan_runs", "plan_shipments"):
        expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1000)
    shoot(page, work, "planning_group.png")


@pytest.mark.timeout(420)
def test_plan_page_shows_latest_metadata_and_checks(dagster_ui, page):
    from playwright.sync_api import expect

    url, work = dagster_ui
    page.goto(f"{url}/assets/clinker_plan")
    dismiss_welcome(page)
    for key in ("status", "served_pct", "cost_inr", "mip_gap", "solve_s"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("optimal", exact=True).first).to_be_visible()
    shoot(page, work, "clinker_plan.png")
    page.goto(f"{url}/assets/clinker_plan?view=checks")
    for check in ("plan_found", "gap_within_target"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible(timeout=30_000)
    page.goto(f"{url}/assets/clinker_capacity?view=checks")
    for check in ("schema_valid", "references_valid"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible(timeout=30_000)


@pytest.mark.timeout(420)
def test_plan_page_reads_like_a_report_with_pictures(dagster_ui, page):
    from playwright.sync_api import expect

    url, work = dagster_ui
    # the PNGs are written for analysts beside the DuckDB file, one folder per plan run
    charts = work / "clinker_charts"
    runs = [p for p in charts.iterdir() if p.name != "scenarios"]
    assert len(runs) == 1, "one plan run, one folder of charts beside clinker.duckdb"
    assert {p.name for p in runs[0].iterdir()} >= {"network_map.png", "unmet_by_node.png"}
    assert list(charts.glob("scenarios/*/scenario_comparison.png"))
    page.goto(f"{url}/assets/clinker_plan")
    dismiss_welcome(page)
    for key in ("cost (INR crore)", "served (%)", "top bottleneck", "changes"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible(timeout=30_000)
    dismiss_welcome(page)  # on a loaded machine the dialog can come after the first try
    page.wait_for_timeout(500)
    shoot(page, work, "clinker_plan_head.png")  # status, cost, served, gap, bottleneck, changes
    # each picture is a markdown entry; Dagster renders long markdown behind "[Show Markdown]"
    for name in ("network_map", "production_vs_capacity", "unmet_by_node", "mode_share"):
        expect(page.get_by_role("row", name=name).first).to_be_visible(timeout=30_000)
    page.get_by_role("row", name="network_map").first.get_by_text("[Show Markdown]").click()
    picture = page.locator('img[src^="data:image/png;base64,"]').first
    expect(picture).to_be_visible(timeout=30_000)
    box = picture.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 200
    page.wait_for_timeout(500)
    shoot(page, work, "clinker_plan_report.png")
