"""The portal in headless Chromium against the running service and the demo city.

Screenshots are kept in ``tests/artifacts/`` (git-ignored) for people to look at. How fast the first
map render is gets measured by ``benchmarks/first_render.py``, not here: a timed test fails on a busy
machine through no fault of the portal.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine

from geoshare.demo.metadata import DEPARTMENTS as DEMO_DEPARTMENTS

pytestmark = pytest.mark.timeout(240)
PIL = pytest.importorskip("PIL.Image", reason="Pillow is needed to compare screenshots (pip install pillow)")

VIEW = "#13/39.9120/116.4000"  # central Beijing: districts, streets, roads and their labels


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
    badges = browser.execute_script(
        "return [...document.querySelectorAll('#results .card .badge[title]')]"
        ".map(b => [b.title, b.textContent])"
    )
    assert badges == [["yjglj", DEMO_DEPARTMENTS["yjglj"]]]  # the department by name, its code on hover
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


# -- second slice: sign-in, publishing, sharing, usage, batch geocoding --------------------------------


ACTIVE = "return document.activeElement.id || document.activeElement.tagName"
# the publish form in Tab order: data, the folded options (their summary), metadata, then Check
TAB_ORDER = [
    "file", "address_column", "SUMMARY", "layer-id", "title", "department", "class", "theme",
    "update_frequency", "keywords", "key_field", "restricted_fields", "description", "check",
]  # fmt: skip


def _whole_page(driver: Any, path: Path) -> None:
    """A screenshot of the whole page, below the fold too (Chromium's DevTools protocol)."""
    import base64

    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))


def _key(engine: Engine, department: str, role: str = "publisher") -> str:
    from geoshare.access.store import create_key

    with engine.begin() as conn:
        return create_key(conn, department, role, label=f"e2e {role}").key


def _sign_in(driver: Any, service: str, key: str) -> str:
    """Through the sign-in form (Enter submits); the status line it shows."""
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{service}/portal/signin")
    field = driver.find_element("id", "api-key")
    field.send_keys(key, Keys.ENTER)
    return _wait(driver, "document.querySelector('#signin-status p:not(:empty)')?.innerText")


def _point_collection(points: list[tuple[float, float, str]], broken_at: int | None = None) -> str:
    import json

    features = [
        {
            "type": "Feature",
            "properties": {"编号": code, "名称": f"测试点{code}"},
            "geometry": None if i + 1 == broken_at else {"type": "Point", "coordinates": [lon, lat]},
        }
        for i, (lon, lat, code) in enumerate(points)
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


def test_sign_in_rejects_a_bad_key_and_remembers_a_good_one(
    browser: Any, service: str, demo: Engine, artifacts: Path
) -> None:
    bad = _sign_in(browser, service, "gsk_abcdefgh_" + "x" * 40)
    assert "密钥无效" in bad, bad
    assert browser.find_element("id", "api-key").get_attribute("aria-invalid") == "true"
    assert browser.execute_script("return localStorage.getItem('gs_key')") is None
    assert browser.find_element("id", "identity").get_attribute("hidden") is not None

    key = _key(demo, "yjglj")
    ok = _sign_in(browser, service, key)
    assert "yjglj" in ok and "发布者" in ok, ok
    assert browser.execute_script("return localStorage.getItem('gs_key')") == key
    assert DEMO_DEPARTMENTS["yjglj"] in browser.find_element("id", "account-link").text  # by name
    assert "yjglj" in browser.find_element("id", "identity-meta").text
    browser.save_screenshot(str(artifacts / "signin.png"))

    browser.find_element("id", "signout").click()
    assert browser.execute_script("return localStorage.getItem('gs_key')") is None
    assert browser.find_element("id", "account-link").text == "登录"


def test_publish_through_the_form_creates_a_new_version(
    browser: Any, service: str, demo: Engine, tmp_path: Path, artifacts: Path
) -> None:
    import json

    import httpx

    key = _key(demo, "yjglj")
    points = [(116.39 + i / 100, 39.91, f"P{i}") for i in range(4)]
    first = httpx.post(
        f"{service}/layers",
        headers={"X-API-Key": key},
        files={"file": ("v1.geojson", _point_collection(points[:3]).encode())},
        data={"metadata": json.dumps({"id": "e2e_points", "title": "测试点位", "department": "yjglj",
                                      "class": "public", "key_field": "编号"})},
    )  # fmt: skip
    assert first.status_code == 201, first.text

    _sign_in(browser, service, key)
    browser.get(f"{service}/portal/publish?layer=e2e_points")
    _wait(browser, "document.getElementById('title').value === '测试点位'")
    assert browser.find_element("id", "key_field").get_attribute("value") == "编号"

    bad = tmp_path / "bad.geojson"
    bad.write_text(_point_collection(points, broken_at=2), encoding="utf-8")
    browser.find_element("id", "file").send_keys(str(bad))
    browser.find_element("id", "check").click()
    problem = _wait(browser, "document.querySelector('#report .problem')?.innerText")
    assert "第 2 行" in problem and "feature 2" in problem, problem
    assert browser.find_element("id", "publish").get_attribute("disabled") is not None
    browser.save_screenshot(str(artifacts / "publish-problem.png"))

    good = tmp_path / "v2.geojson"
    good.write_text(_point_collection(points), encoding="utf-8")
    browser.find_element("id", "file").send_keys(str(good))
    browser.find_element("id", "check").click()
    report = _wait(browser, "document.querySelector('#report .result')?.innerText")
    assert "第 2 版" in report and "4" in report, report
    _whole_page(browser, artifacts / "publish-report.png")
    browser.find_element("id", "publish").click()
    version = _wait(browser, "document.getElementById('published')?.getAttribute('data-version')")
    assert version == "2"
    done = browser.find_element("id", "published").text
    assert "新增 1" in done, done

    browser.find_element("css selector", "#published a").click()
    _wait(browser, "document.querySelector('#versions li[value=\"2\"]')")
    versions = browser.find_element("id", "versions").text
    browser.save_screenshot(str(artifacts / "publish-new-version.png"))
    assert versions.index("第 2 版") < versions.index("第 1 版"), versions
    assert browser.find_element("id", "publish-version").is_displayed()
    endpoints = browser.find_element("id", "endpoints").text
    assert "REQUEST=GetCapabilities" in endpoints and "export?format=gpkg" in endpoints


def test_publish_form_is_usable_from_the_keyboard(browser: Any, service: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{service}/portal/publish")
    _wait(browser, "document.body.dataset.page === 'publish' && window.GSPortal")
    browser.execute_script("document.getElementById('file').focus()")
    order = []
    for _ in range(len(TAB_ORDER)):
        order.append(browser.execute_script(ACTIVE))
        ActionChains(browser).send_keys(Keys.TAB).perform()  # to the page, as a person presses it
    assert order == TAB_ORDER

    layer_id = browser.find_element("id", "layer-id")
    layer_id.send_keys("kbd_test", Keys.ENTER)  # Enter submits: the check runs and names what is missing
    problem = _wait(browser, "document.querySelector('#report .problem')?.innerText")
    assert "数据文件" in problem, problem
    assert browser.execute_script("return document.activeElement.id") == "file"


def test_agreement_request_reaches_the_provider(
    browser: Any, service: str, demo: Engine, artifacts: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    # csglw cannot see yjglj's restricted hazard_sources: it types the id and the provider in
    consumer, provider = _key(demo, "csglw"), _key(demo, "yjglj")
    _sign_in(browser, service, consumer)
    browser.get(f"{service}/portal/agreements?layer=hazard_sources")
    _wait(browser, "document.getElementById('request-form').dataset.lookup === 'done'")
    assert browser.find_element("id", "req-provider").get_attribute("value") == ""  # nothing revealed
    assert "没有待审批" in _wait(browser, "document.getElementById('incoming').innerText")
    browser.find_element("id", "req-provider").send_keys("yjglj")
    browser.find_element("id", "req-fields").send_keys("名称、等级")
    browser.find_element("id", "req-purpose").send_keys("城市运行：危化品企业周边管线巡查")
    browser.find_element("css selector", "#request-form button[type=submit]").send_keys(Keys.ENTER)
    filed = _wait(browser, "document.getElementById('request-status').innerText")
    assert "已提交" in filed and "yjglj" in filed, filed
    mine = _wait(browser, "document.querySelector('#mine tbody tr[data-agreement]')?.innerText")
    assert "待审批" in mine and "hazard_sources" in mine, mine

    _sign_in(browser, service, provider)
    browser.get(f"{service}/portal/agreements")
    card = _wait(browser, "document.querySelector('#incoming li[data-agreement]')?.innerText")
    browser.save_screenshot(str(artifacts / "agreements-incoming.png"))
    assert "csglw" in card and "hazard_sources" in card and "名称、等级" in card and "管线巡查" in card, card
    request = browser.find_element("css selector", "#incoming li[data-agreement]")
    filed_id = request.get_attribute("data-agreement")
    request.find_element("css selector", "button[data-decide=approve]").click()
    row = _wait(browser, f"document.querySelector('#mine tr[data-agreement=\"{filed_id}\"]')?.innerText")
    assert "csglw" in row and "生效中" in row and "天后到期" in row, row
    assert "没有待审批" in browser.find_element("id", "incoming").text
    _whole_page(browser, artifacts / "agreements-approved.png")


def test_usage_page_draws_the_calls(browser: Any, service: str, demo: Engine, artifacts: Path) -> None:
    import httpx

    consumer = _key(demo, "csglw", "consumer")
    for _ in range(3):  # csglw reads yjglj's shelters: yjglj sees it among the layer's consumers
        url = f"{service}/collections/emergency_shelters/items?limit=1"
        got = httpx.get(url, headers={"X-API-Key": consumer})
        assert got.status_code == 200
    browser.get(f"{service}/portal/usage")
    browser.execute_script("localStorage.setItem('gs_key', arguments[0])", _key(demo, "yjglj"))
    deadline = time.monotonic() + 15
    consumers: list[str] = []
    while "csglw" not in consumers and time.monotonic() < deadline:  # the roll-up lags the calls by ~1 s
        browser.get(f"{service}/portal/usage")
        _wait(browser, "document.body.hasAttribute('data-usage-rows') || document.querySelector('.problem')")
        consumers = browser.execute_script(
            "return [...document.querySelectorAll('#top-consumers [data-layer=emergency_shelters] li')]"
            ".map(li => li.dataset.department)"
        )
    _whole_page(browser, artifacts / "usage.png")
    assert "csglw" in consumers, consumers
    for chart in ("by-department", "by-layer"):
        bars = browser.execute_script(f"return document.querySelectorAll('#{chart} rect').length")
        assert bars > 0, f"{chart}: no bars drawn"
    series = browser.execute_script(
        "return [...document.querySelectorAll('#by-department rect')].map(r => r.dataset.series)"
    )
    assert "csglw" in series


def test_batch_geocoding_highlights_the_unmatched_rows(
    browser: Any, service: str, demo: Engine, tmp_path: Path, artifacts: Path
) -> None:
    from sqlalchemy import text

    with demo.connect() as conn:
        good = conn.execute(
            text("SELECT full_address FROM addr.address WHERE level = 'door' ORDER BY address_code LIMIT 4")
        ).scalars().all()  # fmt: skip
    junk = ["火星基地1号", "不存在的地方"]
    rows = [f"{i},{a}" for i, a in enumerate([*good, *junk])]
    path = tmp_path / "地址表.csv"
    path.write_text("编号,地址\n" + "\n".join(rows) + "\n", encoding="utf-8")
    browser.get(f"{service}/portal/batch")
    browser.execute_script("localStorage.removeItem('gs_key')")
    browser.find_element("id", "batch-file").send_keys(str(path))
    browser.find_element("css selector", "#batch-form button[type=submit]").click()
    _wait(browser, "document.getElementById('job').dataset.status === 'done'", timeout=60)
    _wait(browser, "document.querySelector('#unmatched table')")
    _whole_page(browser, artifacts / "batch.png")
    flagged = browser.execute_script(
        "return [...document.querySelectorAll('#unmatched table.unmatched tbody tr.flagged')]"
        ".map(tr => tr.innerText)"
    )
    assert len(flagged) == len(junk) and all(any(j in r for j in junk) for r in flagged), flagged
    preview = browser.execute_script(
        "return [...document.querySelectorAll('#unmatched table:not(.unmatched) tbody tr')]"
        ".map(tr => tr.classList.contains('flagged'))"
    )
    assert preview == [False] * len(good) + [True] * len(junk)
    assert "job=" in browser.current_url
