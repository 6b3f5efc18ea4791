"""The report opened in headless Chromium: no console errors, no network, a non-blank page."""

from __future__ import annotations

import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found: install it with `apt-get install -y chromium` (Debian)",
)
def test_report_loads_in_chromium_without_console_errors(report, tmp_path):
    import matplotlib.image as mpimg

    _, files = report
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            files.html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    img = mpimg.imread(shot)
    assert img.shape[:2] == (2400, 1200)
    rgb = img[..., :3]
    assert rgb.std() > 0.05 and (rgb < 0.5).mean() > 0.01  # text and figures, not a blank page
