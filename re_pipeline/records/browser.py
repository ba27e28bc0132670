"""Headless Chromium (Debian's `chromium` package): screenshots of the HTML pages, and the flags to launch it with.

The flags keep it quiet and local: no sandbox (CI runs as root), no GPU, and none of the background
requests (updates, sync, component downloads) that a closed network answers with refused connections.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..core.errors import PipelineError

NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium() -> str:
    """The Chromium executable on PATH; a PipelineError saying how to install it when there is none."""
    for name in NAMES:
        if path := shutil.which(name):
            return path
    raise PipelineError("no Chromium on PATH (chromium, chromium-browser, google-chrome): apt-get install chromium")


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2400, timeout: int = 120) -> Path:
    """A PNG of the top `width` x `height` pixels of the HTML file `page`, as headless Chromium shows it."""
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PipelineError(f"Chromium took more than {timeout} s to render {page}") from None
    if done.returncode or not png.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"Chromium could not take the screenshot of {page} (exit {done.returncode}): {last}")
    return png
