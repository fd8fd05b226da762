"""The portal in headless Chromium against the running service and the demo city.

Screenshots are kept in ``tests/artifacts/`` (git-ignored) for people to look at.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine

pytestmark = pytest.mark.timeout(240)
PIL = pytest.importorskip("PIL.Image", reason="Pillow is needed to compare screenshots (pip install pillow)")

VIEW = "#13/39.9120/116.4000"
RENDER_BUDGET_MS = 2000  # central Beijing: districts, streets, roads and their labels


def _wait(driver: Any, script: str, timeout: float = 30.0) -> Any:
    """Poll a JavaScript expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.1)
    logs = "\n".join(e["message"] for e in driver.get_log("browser"))
    raise AssertionError(f"timed out waiting for {script!r}; browser log:\n{logs}")


def _open_map(driver: Any, url: str) -> int:
    """Load a page with a GeoShare map and wait for its first complete render; milliseconds taken."""
    driver.get("about:blank")
    driver.get(url)
    return int(_wait(driver, "document.querySelector('[data-gs-ready]')?.getAttribute('data-gs-ready')"))


def _idle(driver: Any) -> None:
    driver.execute_script(
        "window.__idle = false; window.gsMap.once('idle', () => { window.__idle = true; });"
    )
    driver.execute_script("window.gsMap.triggerRepaint();")
    _wait(driver, "window.__idle")


def _pixels(driver: Any, element_id: str, path: Path) -> Any:
    import numpy as np

    png = driver.find_element("id", element_id).screenshot_as_png
    path.write_bytes(png)
    return np.asarray(PIL.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def test_map_renders_with_chinese_labels(browser: Any, service: str, artifacts: Path) -> None:
    _open_map(browser, f"{service}/map{VIEW}")
    with_labels = _pixels(browser, "map", artifacts / "map-labels.png")
    assert with_labels.std() > 10, "the map canvas is blank"
    assert len({tuple(p) for p in with_labels[::7, ::7].reshape(-1, 3)}) > 20, "the map has almost no colours"

    symbols = browser.execute_script(
        "return window.gsMap.getStyle().layers.filter(l => l.type === 'symbol').map(l => l.id)"
    )
    assert symbols, "the style has no label layers"
    rendered = browser.execute_script(
        "return window.gsMap.queryRenderedFeatures({layers: arguments[0]}).map(f => f.properties['名称'])"
        ".filter(Boolean)",
        symbols,
    )
    assert any("\u4e00" <= ch <= "\u9fff" for name in rendered for ch in name), "no Chinese label is placed"

    browser.execute_script(
        "arguments[0].forEach(id => window.gsMap.setLayoutProperty(id, 'visibility', 'none'))", symbols
    )
    _idle(browser)
    without = _pixels(browser, "map", artifacts / "map-no-labels.png")
    changed = (abs(with_labels - without).sum(axis=2) > 60).mean()
    assert changed > 0.002, (
        f"hiding the labels changed only {changed:.4%} of the pixels: no labels were drawn"
    )


def test_first_render_is_fast_on_a_warm_service(browser: Any, service: str) -> None:
    """From navigation start to the map's first ``idle`` (every tile drawn, labels placed), with
    the service's caches and the browser's cache warm. WebGL runs on the CPU here (SwiftShader),
    so a machine busy with other work can miss the budget through no fault of the portal: then the
    test says so and skips rather than fail."""
    _open_map(browser, f"{service}/map{VIEW}")  # warms the tile cache and the browser cache
    timings = [_open_map(browser, f"{service}/map{VIEW}") for _ in range(3)]
    if min(timings) > RENDER_BUDGET_MS:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        if load > 1.5:
            pytest.skip(f"machine overloaded (load {load:.1f} per core): renders took {timings} ms")
    assert min(timings) <= RENDER_BUDGET_MS, f"first complete render took {timings} ms"


def test_catalog_search_finds_a_demo_layer(browser: Any, service: str, artifacts: Path) -> None:
    browser.get(f"{service}/portal/catalog")
    box = browser.find_element("id", "q")
    box.send_keys("避难")
    box.submit()
    _wait(
        browser,
        "location.search.includes('q=') && !document.getElementById('results').hasAttribute('aria-busy')"
        " && document.querySelector('#results [data-layer=\"emergency_shelters\"]')",
    )
    titles = browser.execute_script(
        "return [...document.querySelectorAll('#results .card h3 a')].map(a => a.textContent)"
    )
    browser.save_screenshot(str(artifacts / "catalog-search.png"))
    assert titles == ["应急避难场所"]
    browser.find_element("css selector", "#results .card h3 a").click()
    _wait(browser, "document.querySelector('#layer-meta dd')")
    _wait(browser, "document.querySelector('#versions li')")
    assert "应急避难场所" in browser.find_element("id", "layer-title").text
    assert "emergency_shelters" in browser.find_element("id", "embed-snippet").text
    browser.save_screenshot(str(artifacts / "layer-page.png"))


def test_geocode_search_places_a_marker(browser: Any, service: str, demo: Engine, artifacts: Path) -> None:
    import httpx

    answer = httpx.get(
        f"{service}/geocode/reverse", params={"lon": 116.40, "lat": 39.91, "radius": 3000}
    ).json()
    address = answer["result"]["formatted_address"]
    browser.get(f"{service}/portal/geocode")
    _wait(browser, "!!window.gsMap")
    field = browser.find_element("id", "address")
    field.send_keys(address)
    field.submit()
    _wait(browser, "document.querySelectorAll('.gs-marker').length")
    first = browser.find_element("css selector", "#candidates li .address").text
    level = browser.find_element("css selector", "#candidates li .muted").text
    browser.save_screenshot(str(artifacts / "geocode.png"))
    assert first == address
    assert "门址" in level or "楼栋" in level
    marker = browser.execute_script(
        "const m = document.querySelector('.gs-marker').getBoundingClientRect();"
        "const c = document.getElementById('map').getBoundingClientRect();"
        "return [m.x - c.x, m.y - c.y, c.width, c.height]"
    )
    assert 0 <= marker[0] <= marker[2] and 0 <= marker[1] <= marker[3], "the marker is not on the map"


def _browser_key(engine: Engine, origin: str) -> str:
    from geoshare.access.store import create_key

    with engine.begin() as conn:
        return create_key(conn, "zwsjj", "consumer", allowed_referrers=[origin], label="e2e browser key").key


def test_embed_on_another_origin_honours_the_key_binding(
    browser: Any, service: str, demo: Engine, other_origin: tuple[str, dict[str, str]], artifacts: Path
) -> None:
    site, pages = other_origin
    good = _browser_key(demo, site)
    bad = _browser_key(demo, "http://127.0.0.1:1")
    query = "layers=emergency_shelters&center=116.40,39.91&zoom=11&basemap=light"
    for name, key in (("good", good), ("bad", bad)):
        pages[f"/{name}.html"] = (
            "<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>部门网站</title>"
            "<body style='margin:0'><h1 style='font:16px sans-serif'>某部门网站</h1>"
            f"<iframe id='gs' src='{service}/embed?{query}&key={quote(key)}' width='900' height='560'"
            " style='border:0'></iframe></body></html>"
        )

    browser.get(f"{site}/good.html")
    browser.switch_to.frame("gs")
    try:
        _wait(browser, "document.querySelector('[data-gs-ready]')")
        assert not browser.execute_script("return document.querySelector('[data-gs-refused]')")
        drawn = _wait(
            browser,
            "window.gsMap.queryRenderedFeatures({layers: window.gsMap.geoshare.overlayLayerIds()}).length",
        )
        assert drawn > 0, "the embedded layer drew nothing"
        # the framed page's own requests carry GeoShare's origin: only its embed ticket lets the key through
        statuses = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const cfg = JSON.parse(document.getElementById('gs-config').textContent);"
            "const url = '/collections/emergency_shelters/tiles/WebMercatorQuad/tilejson.json'"
            " + '?key=' + cfg.key;"
            "Promise.all([fetch(url), fetch(url, {headers: {'X-GeoShare-Embed': cfg.ticket}})])"
            ".then(rs => done(rs.map(r => r.status)));"
        )
        assert statuses == [403, 200]
    finally:
        browser.switch_to.default_content()
    framed = _pixels(browser, "gs", artifacts / "embed-allowed.png")
    assert framed.std() > 10

    browser.get(f"{site}/bad.html")
    browser.switch_to.frame("gs")
    try:
        message = _wait(browser, "document.getElementById('refused')?.innerText")
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(artifacts / "embed-refused.png"))
    assert "不允许" in message, message
    assert site in message, "the refusal should name the origin that was refused"
