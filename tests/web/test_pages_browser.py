"""The shared layouts in real headless Chromium: charts drawn under a strict CSP, phones at 360 px,
keyboard use, contrast, and content without JavaScript. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

CONTRAST_JS = """
(sel) => {
  function rgb(s) { const m = s.match(/[\\d.]+/g).map(Number); return m.length > 3 && m[3] === 0 ? null : m.slice(0, 3); }
  function lum(c) { return c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
                     .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0); }
  function bg(el) { while (el) { const c = rgb(getComputedStyle(el).backgroundColor); if (c) return c; el = el.parentElement; }
                    return [255, 255, 255]; }
  const out = [];
  for (const el of document.querySelectorAll(sel)) {
    const fg = rgb(getComputedStyle(el).color), b = bg(el);
    const l1 = lum(fg), l2 = lum(b);
    out.push([el.textContent.trim().slice(0, 20), (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05)]);
  }
  return out;
}
"""


def test_sample_page_draws_every_chart_under_a_strict_csp(page_server, page, screenshot):
    page.goto(page_server + "/web/ui")
    page.wait_for_selector("body[data-charts-ready='4']")
    assert page.locator("[data-drawn='1']").count() == 4
    assert page.locator("[data-drawn='1'] canvas").count() == 4
    # The map chart drew the province's cities (the fallback table names them too).
    assert "长春市" in page.inner_text("figure:has([data-map='jilin']) .chart-fallback")
    assert page.console_errors == [], page.console_errors  # no CSP violation, no script error
    screenshot(page, "web-ui-components")


def test_home_page_in_english_and_chinese(page_server, page, screenshot):
    page.goto(page_server + "/")
    assert page.locator("h1").inner_text() == "吉林省全民健康信息平台"
    screenshot(page, "web-home-zh")
    page.click("text=English")
    assert page.locator("h1").inner_text() == "Jilin Provincial Health Information Platform"
    page.goto(page_server + "/console")  # the cookie keeps the choice
    assert page.locator("html").get_attribute("lang") == "en"
    screenshot(page, "web-console-en")
    assert page.console_errors == []


def test_resident_layout_fits_a_360px_phone(page_server, page, screenshot):
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(page_server + "/portal")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    nav = page.locator("nav.mainnav")
    box = nav.bounding_box()
    assert box is not None and box["y"] + box["height"] >= 740 - 1  # tab bar at the bottom of the phone
    screenshot(page, "web-portal-360px", full_page=False)


def test_keyboard_reaches_skip_link_and_main_content(page_server, page):
    page.goto(page_server + "/web/ui")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.evaluate("document.activeElement.textContent") == "跳到主要内容"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Every form control has a label.
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input,select,textarea')]
        .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length""")
    assert unlabeled == 0


def test_text_contrast_meets_wcag_aa(page_server, page):
    page.goto(page_server + "/web/ui")
    for selector in ("main p", "main th", "main td", ".mainnav a", ".btn", ".badge", ".brand span", ".notice"):
        for text, ratio in page.evaluate(CONTRAST_JS, selector):
            assert ratio >= 4.5, f"{selector} {text!r}: contrast {ratio:.2f}"


def test_content_is_there_without_javascript(page_server, page):
    page.route("**/*.js*", lambda route: route.abort())
    page.goto(page_server + "/web/ui")
    assert page.locator("body[data-charts-ready]").count() == 0  # no script ran
    fallback = page.locator("figure.chart .chart-fallback table").first
    assert fallback.is_visible()
    assert "6.8" in fallback.inner_text()
    assert page.locator("table.table caption").first.inner_text() == "示例表格"


@pytest.mark.parametrize("path", ["/console", "/workstation", "/portal"])
def test_audience_layouts(page_server, page, screenshot, path):
    page.goto(page_server + path)
    assert page.locator("h1").count() == 1
    assert page.locator("nav.mainnav a[aria-current='page']").count() == 1
    screenshot(page, "web-layout-" + path.strip("/"))
    assert page.console_errors == []
