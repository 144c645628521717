"""What the browser tests share: Debian's chromium driven by playwright, and checks of what a person sees.

Every page opens fresh in a 1440x1000 window (a projector's width), records the browser console
and refuses any request that leaves the app. The checks read the laid-out page: a block's label
never covers its picture, no label is cut off or wraps, no warning reaches the console.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 1000}
SCREENSHOTS = Path(os.environ.get("VQVAE_SCREENSHOTS", Path(__file__).resolve().parent.parent / ".screenshots"))
TIMEOUT_MS = 30_000
PICTURES = "img, canvas, svg.main-svg"  # what a label must not cover

# For every visible block label (Gradio's <label data-testid="block-label">) on the visible tab: the
# pictures of its own block it overlaps, whether its text is cut off, whether it wraps onto a
# second line. Returns a list of readable complaints.
_LABEL_CHECK = """
(pictures) => {
  const seen = (el) => {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && style.visibility !== "hidden" && style.display !== "none"
      && el.closest("[hidden], .hidden") === null && el.offsetParent !== null;
  };
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
  const complaints = [];
  const labels = '[data-testid="block-label"], .block > label, .block label > span[data-testid="block-info"]';
  for (const label of document.querySelectorAll(labels)) {
    if (!seen(label)) continue;
    const text = label.innerText.trim();
    if (!text) continue;
    const box = label.getBoundingClientRect();
    const block = label.closest(".block") || label.parentElement;
    for (const picture of block.querySelectorAll(pictures)) {
      if (!seen(picture)) continue;
      const r = picture.getBoundingClientRect();
      if (overlap(box, r)) complaints.push(`label "${text}" covers a picture (${picture.tagName.toLowerCase()})`);
    }
    for (const el of [label, ...label.querySelectorAll("span")]) {
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflow !== "visible")
        complaints.push(`label "${text}" is cut off`);
    }
    // the line height is in CSS pixels, the box in the window's: the presenter view enlarges by a zoom
    const line = (parseFloat(getComputedStyle(label).lineHeight) || 20) * (label.currentCSSZoom || 1);
    if (label.querySelector("span") && label.querySelector("span").getBoundingClientRect().height > 1.6 * line)
      complaints.push(`label "${text}" wraps`);
  }
  return [...new Set(complaints)];
}
"""


class Console:
    """Keeps the warnings and errors a page writes to the console, less three kinds that are not the
    app's: Gradio's drawing canvas (gr.Sketchpad) calls PixiJS functions that PixiJS 8 marks
    deprecated, and PixiJS says so once each, in a collapsed group of its own; headless
    Chromium's software WebGL notes that reading the canvas back stalls its (emulated) GPU; and
    Gradio's file upload closes its upload-progress stream with a close() that Gradio's own client
    leaves unimplemented, which warns so (word for word below). Anything else counts."""

    THIRD_PARTY = "PixiJS Deprecation Warning"
    SOFTWARE_GL = re.compile(r"^\[\.WebGL-[0-9a-fx]+\]GL Driver Message \(OpenGL, Performance")
    UPLOAD_STREAM = "Method not implemented."

    def __init__(self, kept: list[str]):
        self.kept = kept
        self.skipping = False

    def __call__(self, message) -> None:
        if message.type == "startGroupCollapsed" and self.THIRD_PARTY in message.text:
            self.skipping = True
        elif message.type == "endGroup":
            self.skipping = False
        elif message.type == "warning" and message.text == self.UPLOAD_STREAM:
            pass
        elif message.type in ("warning", "error") and not self.skipping and not self.SOFTWARE_GL.match(message.text):
            self.kept.append(f"{message.type}: {message.text}")


def open_page(browser, url: str, query: str = ""):
    """A fresh tab on the app (its console and outside requests recorded), once the picker is there."""
    context = browser.new_context(viewport=VIEWPORT)
    outside = lambda route: (page.outside.append(route.request.url), route.abort())  # noqa: E731
    context.route(lambda u: not u.startswith(url), outside)
    page = context.new_page()
    page.outside = []
    page.console = []
    page.on("console", Console(page.console))
    page.on("pageerror", lambda error: page.console.append(f"pageerror: {error}"))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url + query)
    page.wait_for_selector("#checkpoint-picker")
    return page


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown as a person would: open it, click the option."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"[role=option]:has-text({option!r})").first.click()


def no_error_toast(page) -> None:
    page.wait_for_timeout(300)
    toasts = page.locator(".toast-body.error")
    assert toasts.count() == 0, toasts.first.inner_text()


def error_toast(page, text: str) -> None:
    """A toast with the project's message is shown."""
    page.wait_for_selector(f".toast-body:has-text({text!r})")


def no_error_badge(page) -> None:
    """No output shows Gradio's red "Error" pill in place of its last result."""
    badges = page.locator("[data-testid=status-tracker] .error")
    shown = [badges.nth(i) for i in range(badges.count()) if badges.nth(i).is_visible()]
    assert not shown, "an output shows an Error badge"


def has_image(page, elem_id: str) -> None:
    page.wait_for_selector(f"#{elem_id} img", state="visible")


def labels_clear(page) -> None:
    """No label covers a picture, is cut off, or wraps (on what is visible now)."""
    complaints = page.evaluate(_LABEL_CHECK, PICTURES)
    assert complaints == [], complaints


_SCROLLERS = """
() => [...document.querySelectorAll("*")].filter(e => {
  const style = getComputedStyle(e);
  return e.offsetParent !== null && ["auto", "scroll"].includes(style.overflowY) && e.scrollHeight > e.clientHeight + 1;
}).map(e => `${e.closest("[id]")?.id}: ${e.className} scrolls ${e.scrollHeight - e.clientHeight} px`)
"""


def nothing_scrolls(page) -> None:
    """No block on the page is a few pixels too small for what it holds (Chromium draws scroll arrows beside it)."""
    assert page.evaluate(_SCROLLERS) == []


def console_clean(page) -> None:
    """Nothing the page did wrote a warning or an error to the browser's console."""
    assert page.console == [], page.console


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
