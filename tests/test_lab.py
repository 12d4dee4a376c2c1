"""`make lab` (the README's first command) serves JupyterLab with the lessons and widget support."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "qlab-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


@pytest.fixture(scope="module")
def lab_url():
    port = _free_port()
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN}"
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _get(f"{url}/api/status?token={TOKEN}")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"`make lab` exited with status {proc.returncode}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_lab_serves_the_student_copies_of_the_numbered_lessons(lab_url):
    """The root is the repository (lessons link ../docs/...); `make lab` wrote lessons/ first."""
    root = {item["name"] for item in json.loads(_get(f"{lab_url}/api/contents?token={TOKEN}"))["content"]}
    assert {"notebooks", "lessons", "qlab"} <= root
    listing = json.loads(_get(f"{lab_url}/api/contents/lessons?token={TOKEN}"))
    served = sorted(item["name"] for item in listing["content"] if item["type"] == "notebook")
    on_disk = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert on_disk and set(on_disk) <= set(served)


def test_lab_opens_on_the_lessons_folder(lab_url):
    with urllib.request.urlopen(f"{lab_url}/?token={TOKEN}", timeout=5) as response:
        assert response.geturl().split("?")[0].endswith("/lab/tree/lessons")


def test_lab_page_loads(lab_url):
    assert b"JupyterLab" in _get(f"{lab_url}/lab?token={TOKEN}")


def test_python_kernel_and_widget_extensions_are_available(lab_url):
    specs = json.loads(_get(f"{lab_url}/api/kernelspecs?token={TOKEN}"))
    assert "python3" in specs["kernelspecs"]
    page = _get(f"{lab_url}/lab?token={TOKEN}").decode()
    for extension in ("@jupyter-widgets/jupyterlab-manager", "jupyter-matplotlib"):
        assert extension in page, f"{extension} is not installed in JupyterLab"


def test_python_kernel_comes_from_the_repository_venv(lab_url):
    specs = json.loads(_get(f"{lab_url}/api/kernelspecs?token={TOKEN}"))
    resources = specs["kernelspecs"]["python3"]["resources"]
    assert any("/kernelspecs/python3/" in url for url in resources.values())
    assert (ROOT / ".venv" / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").is_file()


def test_lab_fetches_no_news_from_the_network(lab_url):
    assert json.loads(_get(f"{lab_url}/lab/api/news?token={TOKEN}"))["news"] == []


def test_lab_settings_switch_off_news_and_update_checks():
    installed = ROOT / ".venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    wanted = json.loads((ROOT / "jupyter" / "overrides.json").read_text())
    assert json.loads(installed.read_text()) == wanted
    assert wanted["@jupyterlab/apputils-extension:notification"] == {"checkForUpdates": False, "fetchNews": "false"}
