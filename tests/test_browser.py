"""The collection as a student meets it: every notebook run in JupyterLab, in a real (headless) browser.

nbval proves that a kernel runs each cell; this proves that JupyterLab shows the result. For each
notebook the test opens it in JupyterLab (served from this venv, reduced profile through CI=1),
runs all cells, waits for the kernel to go idle, and asserts that no cell shows an error, that
every figure rendered as an image, and that every ipywidgets view rendered; then, for each widget
panel, it moves one control and waits for the panel's output to change.

Needs Debian's Chromium at /usr/bin/chromium (`sh tools/ensure_browser.sh` installs it; `make test`
calls it first) and the Python `playwright` package (dev extra); Playwright's own browser download
is never used. Skips, saying why, when either is missing. `-m "not browser"` leaves the pass out.

Select notebooks with `-k 02_` or LCLIB_BROWSER_NOTEBOOKS=01_,03_ (comma-separated substrings of the
path); LCLIB_BROWSER_SOLUTIONS=1 adds notebooks/solutions/; LCLIB_BROWSER_TIMEOUT sets the seconds
allowed for one notebook's run-all (default 600). Screenshots go to a pytest temporary folder whose
path each failure message gives (and `-s` prints for every notebook).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("LCLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RUN_TIMEOUT_S = float(os.environ.get("LCLIB_BROWSER_TIMEOUT", "600"))
OPEN_TIMEOUT_S = 120.0     # JupyterLab loaded, notebook open, kernel started
RENDER_TIMEOUT_S = 30.0    # figures and widget views attached after the last cell ran
INTERACT_TIMEOUT_S = 90.0  # a panel's output redrawn after one control moved

# Settings a fresh JupyterLab user would see, minus what gets in a headless test's way.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},  # never write the committed notebooks
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
}


def _notebooks() -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if os.environ.get("LCLIB_BROWSER_SOLUTIONS", "") not in ("", "0"):
        found += sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
    wanted = [w.strip() for w in os.environ.get("LCLIB_BROWSER_NOTEBOOKS", "").split(",") if w.strip()]
    if wanted:
        found = [p for p in found if any(w in str(p.relative_to(ROOT)) for w in wanted)]
    return found


NOTEBOOKS = _notebooks()
DEMO = ROOT / "tests" / "fixtures" / "browser_demo.ipynb"      # figure + two widget panels: the harness's self-test
BROKEN = ROOT / "tests" / "fixtures" / "browser_broken.ipynb"  # a cell raising: the harness must report it
DEAD = ROOT / "tests" / "fixtures" / "browser_dead_panel.ipynb"  # a panel whose output never changes


# --- JupyterLab server ---------------------------------------------------------------------------

@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen
    log: Path
    shots: Path

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])

    def shutdown_kernels(self) -> None:
        """Close every session and kernel (kernels run in their own process sessions)."""
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels") or []:
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_tools() -> None:
    """Skip, saying exactly what is missing, when the browser pass cannot run here."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: run `sh tools/ensure_browser.sh` (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"Python playwright is not installed in {sys.prefix}: pip install -e '.[dev]'")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        pytest.skip(f"jupyterlab is not installed in {sys.prefix}: pip install -e '.[dev]'")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server by its pid: SIGTERM (it shuts its kernels down), then SIGKILL its process group."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: the group is the server's own
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """One JupyterLab server for this module (stopped when its tests end, before nbval runs the rest)."""
    _require_tools()
    home = tmp_path_factory.mktemp("jupyterlab")
    dirs = {name: home / name for name in ("config", "data", "runtime", "settings", "workspaces", "checkpoints", "shots")}
    for d in dirs.values():
        d.mkdir()
    for plugin, values in LAB_SETTINGS.items():
        target = dirs["settings"] / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    (dirs["config"] / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {
        "news_url": None,  # no announcements feed
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "expose_app_in_browser": True,  # window.jupyterapp: run commands, read cell models
        "user_settings_dir": str(dirs["settings"]),
        "workspaces_dir": str(dirs["workspaces"]),
    }}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "LCLIB_FAST"))}
    env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), JUPYTER_PREFER_ENV_PATH="1",
               CI="1", LCLIB_FAST="1",  # kernels inherit it: the reduced profile
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    token, port = secrets.token_hex(16), _free_port()
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.root_dir={ROOT}", f"--IdentityProvider.token={token}",
               f"--FileCheckpoints.checkpoint_dir={dirs['checkpoints']}"]  # absolute: no .ipynb_checkpoints/ in the tree
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "server.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, process, log, dirs["shots"])
    try:
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {OPEN_TIMEOUT_S:.0f} s:\n{server.log_tail()}")
                time.sleep(0.5)
        yield server
    finally:
        try:
            if process.poll() is None:
                server.shutdown_kernels()
        except Exception:  # the server may already be gone; stopping it below is what matters
            pass
        _stop(process)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


# --- Driving one notebook ------------------------------------------------------------------------

JS_OPENED = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  return !!(w && w.context && w.context.path === path && w.context.isReady && w.sessionContext.session
            && w.sessionContext.session.kernel && w.sessionContext.kernelDisplayStatus === 'idle');
}"""

JS_RUN_ALL = """() => {
  window.__lclibRun = 'running';
  window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then(() => { window.__lclibRun = 'done'; }, (e) => { window.__lclibRun = 'failed: ' + e; });
}"""

JS_RUN_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter((c) => c.model.type === 'code');
  const busy = cells.findIndex((c) => c.model.executionState === 'running' || /\\*/.test(c.promptNode ? c.promptNode.textContent : ''));
  return {run: window.__lclibRun, kernel: w.sessionContext.kernelDisplayStatus, busy,
          executed: cells.filter((c) => c.model.executionCount !== null).length, cells: cells.length};
}"""

# One record per code cell: what the model holds, and what the page shows.
JS_INSPECT = r"""() => {
  const w = window.jupyterapp.shell.currentWidget;
  const WIDGET = 'application/vnd.jupyter.widget-view+json';
  const CONTROLS = '.widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-checkbox, .widget-radio-box, '
                 + '.widget-select, .widget-inline-hbox.widget-text, .widget-play, .widget-colorpicker';
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const records = [];
  w.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    const outputs = cell.model.outputs.toJSON();
    const node = cell.outputArea.node;
    const images = [...node.querySelectorAll('img')];
    // outputArea.widgets[i] shows outputs[i]: a widget view must be attached there, not an error text.
    const widgetChildren = cell.outputArea.widgets.filter((child, i) => outputs[i] && outputs[i].data && WIDGET in outputs[i].data);
    const widgetText = (child) => child.node.innerText.slice(0, 200);
    const failed = (child) => /Error displaying widget|model not found|Loading widget/i.test(widgetText(child));
    // An empty child is a view its kernel closed on purpose (a finished tqdm bar with leave=False).
    const shown = (child) => child.node.querySelector('.jupyter-widgets') && visible(child.node) && !failed(child);
    const closed = (child) => !child.node.querySelector('.jupyter-widgets') && !widgetText(child).trim();
    records.push({
      index,
      source: cell.model.sharedModel.getSource().slice(0, 80),
      executionCount: cell.model.executionCount,
      errors: outputs.filter((o) => o.output_type === 'error').map((o) => `${o.ename}: ${o.evalue}`),
      // Errors inside widget Output areas (a panel's callback raising) are in no cell model: read the page.
      // JupyterLab renders an error as stderr text; a traceback tells it from a warning.
      shownErrors: [...node.querySelectorAll('.widget-output [data-mime-type="application/vnd.jupyter.stderr"]')]
        .map((e) => e.innerText).filter((t) => /Traceback \(most recent call last\)/.test(t))
        .map((t) => t.trim().split('\n').pop().slice(0, 300)),
      imageOutputs: outputs.filter((o) => o.data && ['image/png', 'image/jpeg', 'image/svg+xml'].some((m) => m in o.data)).length,
      textFigures: outputs.filter((o) => o.data && !('image/png' in o.data) && /^<Figure size/.test([].concat(o.data['text/plain'] || []).join(''))).length,
      images: images.length,
      brokenImages: images.filter((im) => !im.complete || im.naturalWidth === 0 || !visible(im)).length,
      widgetOutputs: outputs.filter((o) => o.data && WIDGET in o.data && o.data[WIDGET].model_id).length,
      widgetViews: widgetChildren.filter((c) => shown(c) || closed(c)).length,
      widgetFailures: widgetChildren.filter(failed).map(widgetText),
      controls: [...node.querySelectorAll(CONTROLS)].filter(visible).length,
      hiddenControls: [...node.querySelectorAll(CONTROLS)].filter((c) => !visible(c)).length,
    });
  });
  return records;
}"""

# A fingerprint of everything a panel can redraw: images anywhere in outputs, and widget Output areas.
JS_FINGERPRINT = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const parts = [];
  for (const img of w.content.node.querySelectorAll('.jp-OutputArea img')) parts.push(img.src.length + ':' + img.src.slice(-64));
  for (const out of w.content.node.querySelectorAll('.widget-output, .widget-html-content')) parts.push(out.innerText);
  return parts.join('|');
}"""

JS_KERNEL_IDLE = """() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'idle'"""


def _cell_problems(records: list[dict]) -> list[str]:
    problems = []
    for r in records:
        where = f"cell {r['index']} ({r['source'].splitlines()[0] if r['source'] else ''!r})"
        if r["executionCount"] is None and r["source"].strip():
            problems.append(f"{where} did not run")
        for error in r["errors"] + r["shownErrors"]:
            problems.append(f"{where} shows an error: {error}")
        if r["images"] < r["imageOutputs"] or r["brokenImages"]:
            problems.append(f"{where}: {r['imageOutputs']} figure outputs, {r['images']} images shown, "
                            f"{r['brokenImages']} not rendered")
        if r["textFigures"]:
            problems.append(f"{where}: a figure came out as text ('<Figure size ...>'), not as an image")
        if r["widgetViews"] < r["widgetOutputs"] or r["widgetFailures"]:
            problems.append(f"{where}: {r['widgetOutputs']} widget outputs, {r['widgetViews']} rendered "
                            f"{r['widgetFailures']}")
        if r["hiddenControls"]:
            problems.append(f"{where}: {r['hiddenControls']} widget controls not visible")
    return problems


def _inspect_rendered(page) -> list[dict]:
    """Inspect the cells once every figure and widget view has attached (they do so asynchronously after
    the kernel is idle), or after RENDER_TIMEOUT_S, whichever comes first."""
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    while True:
        records = page.evaluate(JS_INSPECT)
        rendering = any(r["images"] < r["imageOutputs"] or r["brokenImages"] or r["widgetFailures"]
                        or r["widgetViews"] < r["widgetOutputs"] for r in records)
        if not rendering or time.monotonic() > deadline:
            return records
        time.sleep(1)


def _move_one_control(page, cell_index: int) -> str:
    """Change one control of the panel in this cell the way a student would; return what was moved."""
    output = page.locator(".jp-Notebook .jp-Cell").nth(cell_index).locator(".jp-OutputArea").first
    moved = _move(output)
    run_button = output.locator("button.widget-button", has_text="Run Interact").first  # interact_manual
    if run_button.count():
        run_button.click()
        moved += ", then Run Interact"
    return moved


def _move(output) -> str:
    slider = output.locator(".widget-slider .noUi-handle").first
    if slider.count():
        slider.focus()
        before = slider.get_attribute("aria-valuenow")
        slider.press("ArrowRight")
        if slider.get_attribute("aria-valuenow") == before:  # at its maximum: go the other way
            slider.press("ArrowLeft")
        return f"slider {before} -> {slider.get_attribute('aria-valuenow')}"
    dropdown = output.locator(".widget-dropdown select").first
    if dropdown.count():
        options = dropdown.locator("option").all_inner_texts()
        current = dropdown.evaluate("(s) => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : null")
        choice = next(o for o in options if o != current)
        dropdown.select_option(label=choice)
        return f"dropdown {current!r} -> {choice!r}"
    buttons = output.locator(".widget-toggle-buttons button:not(.mod-active)").first
    if buttons.count():
        buttons.click()
        return "toggle button"
    for selector in (".widget-checkbox input", ".widget-radio-box input:not(:checked)"):
        box = output.locator(selector).first
        if box.count():
            box.click()
            return selector
    raise AssertionError("a panel with no control this test knows how to move (slider, dropdown, toggle buttons, "
                         "checkbox, radio buttons)")


def _screenshot(page, lab: Lab, name: str, problems: list[str]) -> Path:
    """Save what the student would see; with a problem, scrolled to the first cell it names."""
    shot = lab.shots / f"{name}.png"
    try:
        first = next((int(m.group(1)) for m in map(re.compile(r"^cell (\d+)").match, problems) if m), None)
        if first is not None:
            page.locator(".jp-Notebook .jp-Cell").nth(first).scroll_into_view_if_needed(timeout=5000)
        page.screenshot(path=str(shot))
    except Exception as err:  # a screenshot must never hide the real failure
        shot = Path(f"{shot} (failed: {err})")
    return shot


def run_in_browser(lab: Lab, browser, notebook: Path, interact_timeout_s: float = INTERACT_TIMEOUT_S
                   ) -> tuple[list[str], Path, dict]:
    """Open, run and inspect one notebook; return (problems, screenshot path, timings)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    relative = notebook.relative_to(ROOT).as_posix()
    name = relative.replace("/", "__").removesuffix(".ipynb")
    committed = notebook.read_bytes()
    timings: dict = {}  # seconds per phase, and the panels moved
    problems: list[str] = []
    moved_controls: list[str] = []
    start = time.monotonic()
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.set_default_timeout(30_000)
    try:
        workspace = hashlib.sha1(f"{name}{time.time()}".encode()).hexdigest()[:10]
        page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{relative}?reset&token={lab.token}",
                  wait_until="domcontentloaded", timeout=OPEN_TIMEOUT_S * 1000)
        page.wait_for_function(JS_OPENED, arg=relative, timeout=OPEN_TIMEOUT_S * 1000, polling=500)
        timings["open"] = time.monotonic() - start

        page.evaluate(JS_RUN_ALL)
        page.wait_for_function(
            "() => { const s = (" + JS_RUN_STATE + ")(); return s.run !== 'running' && s.kernel === 'idle' && s.busy < 0; }",
            timeout=RUN_TIMEOUT_S * 1000, polling=1000)
        state = page.evaluate(JS_RUN_STATE)
        if state["run"] != "done":
            problems.append(f"run all cells: {state['run']}")
        timings["run"] = time.monotonic() - start - timings["open"]

        records = _inspect_rendered(page)
        problems += _cell_problems(records)
        if problems:
            return problems, _screenshot(page, lab, name, problems), timings

        for record in (r for r in records if r["controls"]):
            before = page.evaluate(JS_FINGERPRINT)
            try:
                moved = _move_one_control(page, record["index"])
            except AssertionError as err:
                problems.append(f"cell {record['index']}: {err}")
                continue
            try:
                page.wait_for_function(f"(before) => ({JS_FINGERPRINT})() !== before", arg=before,
                                       timeout=interact_timeout_s * 1000, polling=500)
                page.wait_for_function(JS_KERNEL_IDLE, timeout=interact_timeout_s * 1000, polling=500)
            except PlaywrightTimeout:
                problems.append(f"cell {record['index']}: moved {moved}, the output did not change "
                                f"within {interact_timeout_s:.0f} s")
                continue
            moved_controls.append(f"cell {record['index']}: {moved}")
        problems += _cell_problems(_inspect_rendered(page))
        timings["interact"] = time.monotonic() - start - timings["open"] - timings["run"]
        timings["panels moved"] = moved_controls
        return problems, _screenshot(page, lab, name, problems), timings
    except PlaywrightTimeout as err:
        try:
            state = page.evaluate(JS_RUN_STATE)
        except Exception:  # the notebook never opened: there is no state to show
            state = None
        problems.append(f"timed out ({str(err).splitlines()[0]}); state: {state}")
        return problems, _screenshot(page, lab, name, problems), timings
    finally:
        timings["total"] = time.monotonic() - start
        try:
            lab.shutdown_kernels()
        finally:
            page.close()
            if notebook.read_bytes() != committed:  # autosave is off; this is the belt to its braces
                notebook.write_bytes(committed)
                problems.append("JupyterLab wrote to the notebook; the committed version was restored")


def _report(notebook: Path, problems: list[str], shot: Path, timings: dict, lab: Lab) -> str:
    spent = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if isinstance(v, float))
    lines = [f"{notebook.relative_to(ROOT)} in JupyterLab ({spent}); screenshot: {shot}"]
    lines += [f"  moved: {m}" for m in timings.get("panels moved", [])]
    lines += [f"  - {p}" for p in problems]
    if problems:
        lines += ["server log (tail):", lab.log_tail(15)]
    return "\n".join(lines)


# --- Tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS])
def test_notebook_in_jupyterlab(lab, browser, notebook):
    problems, shot, timings = run_in_browser(lab, browser, notebook)
    print(_report(notebook, problems, shot, timings, lab))
    assert not problems, _report(notebook, problems, shot, timings, lab)


def test_harness_on_demo_notebook(lab, browser):
    """The harness itself: a figure and two panels (interactive, interactive_output) pass, and both move."""
    problems, shot, timings = run_in_browser(lab, browser, DEMO)
    print(_report(DEMO, problems, shot, timings, lab))
    assert not problems, _report(DEMO, problems, shot, timings, lab)


def test_harness_reports_an_error(lab, browser):
    """The harness must see an error a student would see (here, 1 / 0 in the second cell)."""
    problems, shot, timings = run_in_browser(lab, browser, BROKEN)
    assert any("ZeroDivisionError" in p for p in problems), _report(BROKEN, problems, shot, timings, lab)


def test_harness_reports_dead_and_failing_panels(lab, browser):
    """The harness must see a panel whose output ignores its control, and one whose callback raises."""
    problems, shot, timings = run_in_browser(lab, browser, DEAD, interact_timeout_s=5)
    assert any("did not change" in p for p in problems), _report(DEAD, problems, shot, timings, lab)
    assert any("ValueError: moved" in p for p in problems), _report(DEAD, problems, shot, timings, lab)
