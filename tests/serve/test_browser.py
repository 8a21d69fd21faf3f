"""End to end in headless Chromium: `alzmri serve` in its own process, a real slice uploaded through the page.

Needs Debian's ``chromium`` at /usr/bin/chromium (never a browser downloaded by
Playwright). Without it the test skips with the reason, except where
``ALZMRI_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where it fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # a live server and headless Chromium (over 4 s)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("ALZMRI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (ALZMRI_REQUIRE_BROWSER=1: the browser test must run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """`python -m alzmri serve RUN` on a free port of 127.0.0.1; its base URL."""
    httpx = pytest.importorskip("httpx")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "alzmri", "serve", str(tiny_run), "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"alzmri serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alzmri serve did not answer within 180 s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    _need(CHROMIUM.exists(), f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "the playwright Python package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_upload_a_real_slice_through_the_page(browser, server, data_6400, tmp_path):
    import httpx

    slice_path = sorted((data_6400 / "Mild_Demented").glob("*.jpg"))[5]
    api = httpx.post(f"{server}/predict", files={"file": (slice_path.name, slice_path.read_bytes(), "image/jpeg")}, timeout=60).json()

    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(server + "/")
    assert page.is_visible("#disclaimer")
    assert "Research use only" in page.inner_text("#disclaimer")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('version')", timeout=30_000)
    assert api["model"]["version"] in page.inner_text("#model-info")

    page.set_input_files("#file", str(slice_path))
    page.wait_for_selector("#result[data-state=done]", timeout=60_000)
    assert page.inner_text("#predicted-class").strip() == api["predicted_class"]
    # both images decoded in the browser
    for img in ("#overlay", "#slice"):
        page.wait_for_function(f"document.querySelector('{img}').complete", timeout=10_000)
        assert page.eval_on_selector(img, "el => el.naturalWidth") == 128
    # one bar per class, the predicted one marked, widths = the API's probabilities
    rows = page.query_selector_all("#bars .bar-row")
    assert [r.get_attribute("data-class") for r in rows] == api["model"]["classes"]
    assert page.get_attribute("#bars .bar-row.predicted", "data-class") == api["predicted_class"]
    for r in rows:
        cls = r.get_attribute("data-class")
        width = r.eval_on_selector(".bar-fill", "el => parseFloat(el.style.width)")
        assert width == pytest.approx(100 * api["probabilities"][cls], abs=0.01)
    assert page.is_visible("#disclaimer") and page.is_hidden("#error") and page.is_hidden("#input-warning")

    # a photo that is not an MRI slice: a result, with the warning shown
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "coffee.jpg"
    Image.fromarray(skimage_data.coffee()).save(photo, quality=90)
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#input-warning", state="visible", timeout=60_000)
    assert "does not look like a brain MRI slice" in page.inner_text("#input-warning")

    # a file the service refuses: its message is shown, no result left over
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    page.wait_for_selector("#result[data-state=error]", state="attached", timeout=30_000)
    assert "unsupported content type" in page.inner_text("#error") and page.is_hidden("#result")
    assert not [e for e in errors if "415" not in e], errors  # no script error, no missing resource
    page.close()
