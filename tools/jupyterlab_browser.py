"""Drive the lessons in a real browser: JupyterLab (or Voilà) + headless Chromium via Playwright.

Used by ``tests/test_browser.py``, ``benchmarks/dashboard_latency_browser.py`` and
``tools/screenshots.py``. It lives in ``tools/`` (not in ``qlab/``) because it is project
tooling: it needs Playwright and a browser, which a learner's ``import qlab`` must not.

Typical use::

    with lesson_copy() as lessons, jupyterlab(lessons) as lab, chromium_page() as page:
        nb = Notebook(page, lab, "01_rounding_and_clamping.ipynb")
        nb.open(); nb.run_all()
        assert nb.errors() == []
        root = nb.dashboards()[0]
        move = measure_move(page, root, dashboard_controls(root)[0])
        print(move.canvas_ms, move.readout_ms)

Conventions:
- The lab is started through the README's entry point, ``make lab``, with ``LAB_DIR`` set to
  a temporary COPY of the lessons (JupyterLab autosaves; tracked notebooks are never opened).
- A dashboard is an output element with the CSS class ``qlab-dashboard``
  (``qlab.dashboards._base.DASHBOARD_CLASS``); its figure is the ipympl canvas
  ``.jupyter-matplotlib-canvas-div canvas``; its readout is the ``.widget-html-content``
  elements inside it.
- Timing uses the page's ``performance.now()``: the start is the first capture-phase
  ``keydown``/``input``/``change``/``click`` event inside the dashboard; the canvas redraw is a
  ``CanvasRenderingContext2D.drawImage`` call on a canvas inside it (ipympl draws each PNG it
  receives with ``drawImage``); the readout change is a DOM mutation of its HTML widgets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "notebooks"
TOKEN = "qlab-browser-token"
DASHBOARD = ".qlab-dashboard"
CANVAS = ".jupyter-matplotlib-canvas-div canvas"
READOUT = ".widget-html-content"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
INSTALL_HINT = (
    "no Chromium found for Playwright: install one with `.venv/bin/playwright install chromium` "
    "or, on Debian/Ubuntu, `sudo apt-get install chromium` (or set QLAB_CHROMIUM to a Chromium binary)"
)
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")

# Recorder injected into every page before its scripts run (see the module docstring).
RECORDER_JS = """
(() => {
  const rec = {target: null, t0: null, draws: [], readout: null, observer: null};
  window.__qlab = rec;
  const drawImage = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    if (rec.target && rec.t0 !== null && this.canvas && rec.target.contains(this.canvas)) rec.draws.push(performance.now());
    return drawImage.apply(this, args);
  };
  for (const type of ['keydown', 'input', 'change', 'click']) {
    document.addEventListener(type, (e) => {
      if (rec.target && rec.t0 === null && rec.target.contains(e.target)) rec.t0 = performance.now();
    }, true);
  }
  rec.arm = (root) => {
    if (rec.observer) rec.observer.disconnect();
    Object.assign(rec, {target: root, t0: null, draws: [], readout: null});
    rec.observer = new MutationObserver(() => {
      if (rec.t0 !== null && rec.readout === null) rec.readout = performance.now();
    });
    for (const el of root.querySelectorAll('.widget-html-content'))
      rec.observer.observe(el, {childList: true, subtree: true, characterData: true});
  };
  rec.result = () => ({t0: rec.t0, draws: rec.draws.slice(), readout: rec.readout, now: performance.now()});
})();
"""

# Error outputs anywhere in the notebook (text of each, trimmed).
ERRORS_JS = """
() => {
  const found = [];
  for (const el of document.querySelectorAll('.jp-OutputArea-output')) {
    const text = el.textContent || '';
    const mime = el.getAttribute('data-mime-type') || '';
    if (mime === 'application/vnd.jupyter.stderr' || /Traceback|Error displaying widget|model not found/.test(text))
      found.push(text.slice(0, 2000));
  }
  for (const el of document.querySelectorAll('.qlab-dashboard')) {
    const text = el.textContent || '';
    if (/ERROR: |raised in /.test(text)) found.push('dashboard error: ' + text.slice(0, 2000));
  }
  return found;
}
"""

# Progress of Run All after the outputs were cleared: prompts are "[ ]:", "[*]:" or "[12]:".
RUN_STATE_JS = """
() => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '');
  const empty = cells.map(c => ((c.querySelector('.jp-InputArea-editor') || {}).textContent || '').trim() === '');
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return {
    busy: prompts.filter(p => p.includes('*')).length,
    pending: prompts.filter((p, i) => !empty[i] && !/\\d/.test(p)).length,
    cells: cells.length,
    status: indicator ? indicator.getAttribute('data-status') : null,
    errors: document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
    loading: [...document.querySelectorAll('.jp-OutputArea-output')].filter(e => /Loading widget/.test(e.textContent || '')).length,
  };
}
"""


# Dashboard outputs and the static snapshot (an <img>) stored right after each.
SNAPSHOTS_JS = """
() => [...document.querySelectorAll('.jp-OutputArea-child')]
  .filter(child => child.querySelector('.qlab-dashboard') || (child.textContent || '').trim().startsWith('[live dashboard:'))
  .map(child => {
    const next = child.nextElementSibling;
    const img = next && next.querySelector('img');
    return {live: !!child.querySelector('.qlab-dashboard'), image: !!img, width: img ? img.naturalWidth : 0,
            shown: !!img && getComputedStyle(next).display !== 'none' && img.getBoundingClientRect().height > 0};
  })
"""


def find_chromium() -> str:
    """Path of a Chromium for Playwright: ``$QLAB_CHROMIUM``, Debian's ``/usr/bin/chromium``, or
    Playwright's own download; raises ``FileNotFoundError`` with :data:`INSTALL_HINT` otherwise."""
    candidates = [os.environ.get("QLAB_CHROMIUM", ""), str(DEBIAN_CHROMIUM)]
    with contextlib.suppress(Exception):
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            candidates.append(p.chromium.executable_path)
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(INSTALL_HINT)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def lesson_copy(pattern: str = "0*.ipynb", source: Path = LESSONS) -> Iterator[Path]:
    """A temporary directory holding copies of ``source/pattern`` (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="qlab-lessons-") as tmp:
        for path in sorted(source.glob(pattern)):
            shutil.copy2(path, tmp)
        yield Path(tmp)


@dataclass(frozen=True)
class Server:
    """A running Jupyter server (JupyterLab or Voilà) on 127.0.0.1."""

    url: str
    token: str
    root_dir: Path
    log: Path

    def api(self, method: str, path: str) -> Any:
        """Call the REST API (``/api/...``) with the token; returns the decoded JSON or None."""
        request = urllib.request.Request(f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def delete_sessions(self) -> None:
        """Shut down every kernel session (between notebooks: frees memory and CPU)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def lab_url(self, notebook: str) -> str:
        """URL opening ``notebook`` in JupyterLab with a fresh workspace (``reset``)."""
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"


def _wait_for_server(proc: subprocess.Popen, probe: str, log: Path, timeout_s: float) -> None:
    """Poll ``probe`` until the server answers it (any HTTP status counts: Voila has no status API)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(probe, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"server did not answer {probe} within {timeout_s:.0f} s; log:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _serve(command: list[str], port: int, root_dir: Path, token: str, timeout_s: float) -> Iterator[Server]:
    root_dir.mkdir(parents=True, exist_ok=True)
    log = root_dir / ".server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(proc, f"{url}/api/status?token={token}", log, timeout_s)
        yield Server(url, token, root_dir, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def jupyterlab(root_dir: Path, token: str = TOKEN, timeout_s: float = 120.0):
    """Context manager: ``make lab`` serving ``root_dir`` (no browser, a free port, ``token``,
    ``window.jupyterapp`` exposed); yields a :class:`Server`, stops the lab afterwards."""
    port = free_port()
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
            "--LabApp.expose_app_in_browser=True --ServerApp.port_retries=0")
    command = ["make", "--no-print-directory", "lab", f"LAB_DIR={root_dir}", f"LAB_ARGS={args}"]
    return _serve(command, port, Path(root_dir), token, timeout_s)


def voila(lesson: str, token: str = TOKEN, timeout_s: float = 120.0):
    """Context manager: ``make present N=lesson`` (the presenter view of lesson ``"05"``, served by
    Voila with no browser, a free port and ``token``); yields a :class:`Server` whose ``url`` is
    the presenter page's server (open ``server.url + "/?token=..."``)."""
    port = free_port()
    args = f"--no-browser --Voila.ip=127.0.0.1 --port={port} --token={token} --Voila.port_retries=0"
    command = ["make", "--no-print-directory", "present", f"N={lesson}", f"PRESENT_ARGS={args}"]
    return _serve(command, port, ROOT / "build" / "present", token, timeout_s)


@contextlib.contextmanager
def chromium_page(width: int = 1366, height: int = 768, device_scale_factor: float = 1.0) -> Iterator[Any]:
    """A Playwright page in headless Chromium with the timing recorder installed."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=device_scale_factor)
            context.add_init_script(RECORDER_JS)
            yield context.new_page()
        finally:
            browser.close()


class Notebook:
    """One notebook opened in JupyterLab in ``page``."""

    def __init__(self, page: Any, server: Server, name: str) -> None:
        self.page, self.server, self.name = page, server, name

    def open(self, timeout_s: float = 60.0) -> None:
        """Load the notebook and wait until its cells are shown."""
        self.page.goto(self.server.lab_url(self.name), timeout=timeout_s * 1e3)
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_s * 1e3)

    def command(self, name: str) -> None:
        """Start a JupyterLab command (``window.jupyterapp.commands``) on the current notebook;
        does not wait for it to finish (Run All's promise settles only when every cell has run)."""
        self.page.evaluate("(name) => { window.jupyterapp.commands.execute(name); }", name)

    def wait_kernel_idle(self, timeout_s: float = 60.0) -> None:
        """Wait until the notebook's kernel is started, connected and idle."""
        self.page.wait_for_function("""async () => {
            const widget = window.jupyterapp.shell.currentWidget;
            if (!widget || !widget.sessionContext) return false;
            await widget.sessionContext.ready;
            const kernel = widget.sessionContext.session && widget.sessionContext.session.kernel;
            return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }""", timeout=timeout_s * 1e3, polling=200)

    def run_all(self, timeout_s: float = 300.0) -> float:
        """Clear every output, Run All, wait until every non-empty code cell has a prompt number
        (or an error stopped the run), the kernel is idle and no widget is still loading.
        Returns the seconds Run All took."""
        self.wait_kernel_idle()
        self.command("notebook:clear-all-cell-outputs")
        start = time.monotonic()
        self.command("notebook:run-all-cells")
        deadline = start + timeout_s
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = self.page.evaluate(RUN_STATE_JS)
            finished = state["busy"] == 0 and (state["pending"] == 0 or state["errors"] > 0)
            if finished and state["status"] == "idle" and state["loading"] == 0:
                return time.monotonic() - start
            time.sleep(0.25)
        raise TimeoutError(f"{self.name}: Run All not finished after {timeout_s:.0f} s: {state}")

    def errors(self) -> list[str]:
        """Texts of error outputs: stderr, tracebacks, widgets that failed to display, dashboard errors."""
        return self.page.evaluate(ERRORS_JS)

    def dashboards(self) -> list[Any]:
        """Locators of the rendered dashboards, in notebook order."""
        roots = self.page.locator(DASHBOARD)
        return [roots.nth(i) for i in range(roots.count())]

    def snapshot_images(self) -> list[dict[str, Any]]:
        """For each dashboard output (a rendered widget view, or the text fallback
        ``[live dashboard: ...]`` shown when no kernel holds the widget): whether the next output
        is an image, its natural width, and whether it is displayed."""
        return self.page.evaluate(SNAPSHOTS_JS)


@dataclass(frozen=True)
class Control:
    """One input of a dashboard: ``kind`` is slider, dropdown, toggle or checkbox."""

    kind: str
    label: str
    locator: Any

    def value(self) -> str:
        """The value the browser shows for this control."""
        if self.kind == "slider":
            return ",".join(self.locator.locator(".noUi-handle").evaluate_all("hs => hs.map(h => h.getAttribute('aria-valuetext'))"))
        if self.kind == "dropdown":
            return self.locator.locator("select").input_value()
        if self.kind == "toggle":
            return self.locator.locator("button.mod-active").text_content() or ""
        return str(self.locator.locator("input").is_checked())

    def enabled(self) -> bool:
        target = {"slider": ".noUi-handle", "dropdown": "select", "toggle": "button", "checkbox": "input"}[self.kind]
        return self.locator.locator(target).first.evaluate(
            "el => !el.disabled && !el.closest('[disabled]') && el.getAttribute('aria-disabled') !== 'true'")


_CONTROL_KINDS = {"slider": ".widget-slider", "dropdown": ".widget-dropdown", "toggle": ".widget-toggle-buttons",
                  "checkbox": ".widget-checkbox"}


def dashboard_controls(root: Any) -> list[Control]:
    """The sliders, dropdowns, toggle buttons and checkboxes of a dashboard, in DOM order."""
    selector = ", ".join(_CONTROL_KINDS.values())
    found = root.locator(selector)
    controls = []
    for i in range(found.count()):
        loc = found.nth(i)
        classes = loc.get_attribute("class") or ""
        kind = next(k for k, sel in _CONTROL_KINDS.items() if sel[1:] in classes.split())
        label = (loc.locator(".widget-label").first.text_content() if loc.locator(".widget-label").count() else "") or ""
        if kind == "checkbox":
            label = loc.text_content() or ""
        controls.append(Control(kind, label.strip(), loc))
    return controls


def step_options(control: Control) -> list[str]:
    """The moves :func:`move` accepts for ``control`` from its current value."""
    if control.kind == "slider":
        handle = control.locator.locator(".noUi-handle").first
        now, lo, hi = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax"))
        return [key for key, ok in (("ArrowRight", now < hi), ("ArrowLeft", now > lo)) if ok]
    if control.kind == "dropdown":
        select = control.locator.locator("select")
        current = select.input_value()
        return [v for v in select.locator("option").evaluate_all("os => os.map(o => o.value)") if v != current]
    if control.kind == "toggle":
        return [t for t in control.locator.locator("button").all_text_contents() if t != control.value()]
    return ["toggle"]


def move(page: Any, control: Control, option: str | None = None) -> None:
    """Change ``control`` the way a learner does: one arrow-key step on a slider's (first) handle,
    choosing an option of a dropdown, clicking a toggle button or a checkbox. ``option`` is
    one of :func:`step_options` (default: its first)."""
    option = option if option is not None else step_options(control)[0]
    control.locator.scroll_into_view_if_needed()
    if control.kind == "slider":
        control.locator.locator(".noUi-handle").first.focus()
        page.keyboard.press(option)
    elif control.kind == "dropdown":
        control.locator.locator("select").select_option(option)
    elif control.kind == "toggle":
        control.locator.locator("button", has_text=option).first.click()
    else:
        control.locator.locator("input").click()


@dataclass(frozen=True)
class Move:
    """Milliseconds from the input event to the first and last canvas draw of the update and to
    the readout's first change (None: not observed before the timeout)."""

    control: str
    value: str
    canvas_first_ms: float | None
    canvas_ms: float | None
    readout_ms: float | None


def measure_move(page: Any, root: Any, control: Control, option: str | None = None,
                 timeout_s: float = 30.0, settle_s: float = 0.3, need_canvas: bool = True) -> Move:
    """Move ``control`` once and time the dashboard's response (see :class:`Move`).

    Waits until the readout changed and (if ``need_canvas``) the canvas was drawn, then until
    no further draw came for ``settle_s`` (ipympl draws more than once per update).
    """
    root.evaluate("(el) => window.__qlab.arm(el)")
    move(page, control, option)
    deadline = time.monotonic() + timeout_s
    while True:
        r = page.evaluate("() => window.__qlab.result()")
        last = r["draws"][-1] if r["draws"] else None
        done = r["readout"] is not None and (last is not None or not need_canvas)
        quiet = (r["now"] - (last if last is not None else r["readout"] or r["now"])) >= settle_s * 1e3
        if (done and quiet) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    t0 = r["t0"]
    since = lambda t: None if t is None or t0 is None else t - t0  # noqa: E731
    return Move(control.label, control.value(), since(r["draws"][0] if r["draws"] else None), since(last), since(r["readout"]))


def canvas_data_url(root: Any) -> str:
    """The dashboard figure's pixels (first ipympl canvas) as a PNG data URL."""
    return root.locator(CANVAS).first.evaluate("(c) => c.toDataURL()")


def readout_text(root: Any) -> str:
    """The text of the dashboard's HTML widgets (readout and error box)."""
    return "\n".join(root.locator(READOUT).all_text_contents())
