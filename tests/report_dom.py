"""Render a Snakemake HTML report in headless Chromium and read back what the page shows.

The report is a single-page app: its results are data URIs in a ``results``
script variable, shown when a reader clicks them. A copy of the report gets a
script that decodes every result as Chromium would
show it (images: their pixel size once decoded; CSV tables: their data rows)
after the report's own scripts have run, and writes the counts into the page, which ``--dump-dom`` then returns.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
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
  return Promise.resolve(new TextDecoder().decode(bytes).trim().split("\\n").length - 1);
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
