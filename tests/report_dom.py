"""Render a Snakemake HTML report in headless Chromium and read back what the page shows.

:func:`render` decodes every bundled result; :func:`inspect_layout` reads what a
reader sees at one window width: the landing page's figures and text, each plot
as the report's image view shows it, each HTML page of the Findings category as
its frame shows it, and every box that lies under the sidebar.

The report is a single-page app: its results are data URIs in a ``results``
script variable, shown when a reader clicks them. A copy of the report gets a
script that decodes every result as Chromium would
show it (images: their pixel size once decoded; CSV tables and table pages: their data rows)
after the report's own scripts have run, and writes the counts into the page, which ``--dump-dom`` then returns.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html import unescape as html_unescape
from pathlib import Path

#: Chromium's command names on Debian and elsewhere.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_CHECK = """
<script>
function circuitsweepShown(result) {
  if (result.mime_type.startsWith("image/")) {
    return new Promise((resolve) => {
      const image = new Image();
      image.onload = () => resolve(image.naturalWidth * image.naturalHeight);
      image.onerror = () => resolve(0);
      image.src = result.data_uri;
    });
  }
  const bytes = Uint8Array.from(atob(result.data_uri.split(",").pop()), (c) => c.charCodeAt(0));
  const text = new TextDecoder().decode(bytes);
  if (result.mime_type === "text/html") {  // a table page: its data rows (every row but the header)
    return Promise.resolve((text.match(/<tr>/g) || []).length - 1);
  }
  return Promise.resolve(text.trim().split("\\n").length - 1);
}
Promise.all(Object.entries(results).map(([path, result]) => circuitsweepShown(result).then((n) => [path, n])))
  .then((pairs) => {
    const out = document.createElement("pre");
    out.id = "circuitsweep-shown";
    out.textContent = JSON.stringify(Object.fromEntries(pairs));
    document.body.appendChild(out);
  });
</script>
"""


def chromium() -> str | None:
    """The path of a Chromium executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class RenderedReport:
    """What the rendered report holds: the landing page's HTML and each result's decoded size."""

    landing: str
    shown: dict[str, int]


def render(report: Path, workdir: Path) -> RenderedReport:
    """Load ``report`` in headless Chromium; ``workdir`` holds the instrumented copy."""
    html = report.read_text(errors="replace")
    copy = workdir / "report_checked.html"
    head, tail = html.rsplit("</body>", 1)
    copy.write_text(head + _CHECK + "</body>" + tail)
    command = [
        chromium() or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        copy.resolve().as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout
    found = re.search(r'<pre id="circuitsweep-shown">(.*?)</pre>', dom, re.S)
    if not found:
        raise AssertionError("the report's results were not rendered (no check output in the page)")
    app = dom[dom.index('id="app"') :]
    return RenderedReport(landing=app, shown=json.loads(found.group(1).replace("&quot;", '"')))


_LAYOUT = """
<style>* { transition: none !important; }</style>
<script>
(async () => {
  const layout = { landing_figures: [], landing_text: "", plots: {}, pages: {}, under_sidebar: [] };
  Object.assign(layout, { error: null, done: false, sidebar: null });
  const out = document.createElement("pre");
  out.id = "circuitsweep-layout";
  const save = () => { out.textContent = JSON.stringify(layout); };
  document.body.appendChild(out);
  save();
  try {
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const box = (element) => {
    const r = element.getBoundingClientRect();
    return { left: r.left, right: r.right, width: r.width, height: r.height };
  };
  const name = (element) => `${element.tagName.toLowerCase()} "${(element.textContent || "").trim().slice(0, 40)}"`;
  const underSidebar = (element) => {
    const shown = box(element);
    const sidebar = box(document.querySelector("#app nav"));
    layout.sidebar = sidebar;
    return shown.width > 0 && shown.height > 0 && shown.left < sidebar.right - 1;
  };
  await pause(2000);
  save();
  const prose = document.querySelector("#app .prose");
  const figures = [...prose.querySelectorAll("img, svg")].filter((f) => !f.parentElement.closest("svg"));
  layout.landing_figures = figures.map(box);
  layout.landing_text = prose.innerText;
  const boxes = [prose, ...prose.querySelectorAll("h1, h2, h3, p, table, img, svg")];
  boxes.push(document.getElementById("rulegraph"));
  for (const element of boxes.filter((b) => b && !(b.parentElement && b.parentElement.closest("svg")))) {
    if (underSidebar(element)) layout.under_sidebar.push(`landing: ${name(element)}`);
  }
  for (const [subcategory, paths] of Object.entries(categories["Plots"] || {})) {
    for (const path of paths) {
      const view = { category: "Plots", subcategory: subcategory, content: "img", resultPath: path };
      app.setView({ ...view, navbarMode: "subcategory", contentPath: results[path].data_uri });
      await pause(1500);
      const images = [...document.querySelectorAll("#app img")];
      const image = images.find((i) => !i.closest("nav") && i.src.startsWith("data:"));
      if (!image) { layout.plots[path] = { left: 0, right: 0, width: 0, height: 0 }; continue; }
      for (let tries = 0; tries < 50 && !(image.complete && image.naturalWidth); tries++) await pause(100);
      layout.plots[path] = box(image);
      if (underSidebar(image)) layout.under_sidebar.push(`Plots: ${path}`);
      save();
    }
  }
  for (const [subcategory, paths] of Object.entries(categories["Findings"] || {})) {
    for (const path of paths) {
      const view = { category: "Findings", subcategory: subcategory, content: "html", resultPath: path };
      app.setView({ ...view, navbarMode: "subcategory", contentPath: results[path].data_uri });
      await pause(1500);
      const frame = [...document.querySelectorAll("#app iframe")].find((f) => !f.closest("nav"));
      if (!frame) { layout.pages[path] = { error: "no iframe" }; save(); continue; }
      // the report shows the page from a data: URI, an opaque origin; the same HTML as srcdoc can be read here
      const bytes = Uint8Array.from(atob(results[path].data_uri.split(",").pop()), (c) => c.charCodeAt(0));
      frame.removeAttribute("src");
      frame.srcdoc = new TextDecoder().decode(bytes);
      await pause(1500);
      const doc = frame.contentDocument;
      const page = { frame: box(frame), under_sidebar: underSidebar(frame), text: doc.body.innerText };
      const view_width = doc.documentElement.clientWidth;
      page.page_overflow = doc.documentElement.scrollWidth - view_width;
      // a table wider than its box, a cell whose text spills out of it, a block outside the frame
      page.overflowing = [];
      for (const element of doc.querySelectorAll("div.table, th, td, p, h1, h2, h3")) {
        const r = element.getBoundingClientRect();
        if (element.scrollWidth > element.clientWidth + 1 || r.right > view_width + 1 || r.left < -1) {
          page.overflowing.push(`${element.tagName.toLowerCase()} "${element.textContent.trim().slice(0, 40)}"`);
        }
      }
      // blocks of the page drawn over one another
      const blocks = [...doc.body.children].map((b) => [b, b.getBoundingClientRect()]);
      page.overlaps = [];
      for (let i = 1; i < blocks.length; i++) {
        const [element, r] = blocks[i];
        const [before, q] = blocks[i - 1];
        if (r.height > 0 && q.height > 0 && r.top < q.bottom - 1) {
          page.overlaps.push(`${element.tagName} over ${before.tagName} "${before.textContent.trim().slice(0, 40)}"`);
        }
      }
      page.tables = [...doc.querySelectorAll("table")].map((t) => t.className);
      layout.pages[path] = page;
      save();
    }
  }
  } catch (error) {
    layout.error = String(error);
  }
  layout.done = true;
  save();
})();
</script>
"""


@dataclass(frozen=True)
class Layout:
    """What a reader sees at one window width (CSS pixels).

    landing_figures: the rendered boxes of the landing page's images and SVGs;
    landing_text: the landing page's visible text; plots: each result of the
    Plots category as the image view shows it; pages: each HTML result of the
    Findings category as its frame shows it (``frame``: the frame's box;
    ``under_sidebar``; ``text``; ``page_overflow``: pixels the page is wider
    than its frame; ``overflowing``: tables, cells and blocks wider than their
    box or the frame; ``overlaps``: blocks drawn over the one before;
    ``tables``: the class of each table, in order); under_sidebar: every
    content box whose left edge lies under the sidebar.
    """

    landing_figures: list[dict[str, float]]
    landing_text: str
    plots: dict[str, dict[str, float]]
    under_sidebar: list[str]
    pages: dict[str, dict] = field(default_factory=dict)
    error: str | None = None
    done: bool = False
    sidebar: dict[str, float] | None = None


def _chromium_command(workdir: Path, *args: str) -> list[str]:
    return [
        chromium() or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        *args,
    ]


def inspect_layout(report: Path, workdir: Path, width: int, height: int = 900) -> Layout:
    """Load ``report`` in a ``width`` x ``height`` headless Chromium window and read its :class:`Layout`."""
    html = report.read_text(errors="replace")
    copy = workdir / f"report_layout_{width}.html"
    head, tail = html.rsplit("</body>", 1)
    copy.write_text(head + _LAYOUT + "</body>" + tail)
    command = _chromium_command(
        workdir, f"--window-size={width},{height}", "--virtual-time-budget=30000", "--dump-dom", copy.resolve().as_uri()
    )
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout
    found = re.search(r'<pre id="circuitsweep-layout">(.*?)</pre>', dom, re.S)
    if not found:
        raise AssertionError(f"the report's layout was not read at {width} px (no check output in the page)")
    layout = Layout(**json.loads(html_unescape(found.group(1))))
    if layout.error or not layout.done:
        raise AssertionError(f"the layout check did not finish in the page at {width} px: {layout}")
    return layout


def screenshot(report: Path, workdir: Path, png: Path, width: int, height: int = 900) -> Path:
    """A PNG of the report's landing page in a ``width`` x ``height`` window (for looking at it)."""
    command = _chromium_command(
        workdir, f"--window-size={width},{height}", "--virtual-time-budget=10000", f"--screenshot={png}"
    )
    command.append(report.resolve().as_uri())
    subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)
    return png
