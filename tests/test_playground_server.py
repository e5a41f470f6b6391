"""The playground's server configuration (playground/server/voila.py) against hostile clients.

Voilà is started on a free 127.0.0.1 port with the configuration `make playground` uses
(one test runs `make playground` itself, on the real explorer); the others serve a one-cell
notebook holding an ``ipywidgets.Image``, the widget behind the reliability review's finding
A1. Every test talks HTTP and the kernel websocket directly, as a script would: no browser.

``SAMPY_PLAYGROUND_CONFIG_DIR`` points the tests at another configuration directory (an empty
one shows what they catch on a bare Voilà; expect the legacy-protocol test to fail fast with
the server killed by the fixture).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from book_helpers import REPO_ROOT, clean_env, free_port, tail

websocket = pytest.importorskip("websocket")  # websocket-client, a jupyter_server dependency
from jupyter_server.services.kernels.connection.base import (  # noqa: E402
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)

CONFIG_DIR = Path(
    os.environ.get("SAMPY_PLAYGROUND_CONFIG_DIR", REPO_ROOT / "playground" / "server")
).resolve()
# What the Makefile's playground target passes besides the notebook and the port.
PLAYGROUND_ARGS = [
    "--no-browser",
    "--Voila.ip=127.0.0.1",
    f"--Voila.config_file_paths={CONFIG_DIR}",
]
KERNEL_WS_V1 = "v1.kernel.websocket.jupyter.org"
TOKEN = secrets.token_hex(16)
# A 1x1 PNG: the smallest widgets.Image, enough to put a binary buffer on the wire.
IMAGE_CELL = (
    "import base64\nimport ipywidgets\n"
    "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
    "//8/AAX+Av4N70a4AAAAAElFTkSuQmCC')\nipywidgets.Image(value=png, format='png')"
)
# The server's RSS may grow by a few MB serving a page; A1 grows it by ~50 MB/s.
RSS_GROWTH_LIMIT_MB = 100


# --------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (its kernels), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def kill_tree(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM ``proc`` and everything below it (Voilà then shuts its kernels down), then
    SIGKILL whatever is still alive after ``grace`` seconds (a server frozen by A1 ignores
    SIGTERM)."""
    family = descendants(proc.pid)
    for pid in [proc.pid, *family]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in family):
        time.sleep(0.1)
    for pid in family + descendants(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str


def http_get(port: int, path: str, host: str | None = None, timeout: float = 60) -> Reply:
    """GET ``path`` from 127.0.0.1:``port``, no redirects followed, any Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def page_kernel(self) -> tuple[str, str]:
        """GET the page with the token: the kernel it started, and the login cookie."""
        reply = http_get(self.port, f"/?token={TOKEN}")
        assert reply.status == 200, (reply.status, reply.body[-500:])
        kernel = re.search(r'"kernelId": "([0-9a-f-]{36})"', reply.body)
        assert kernel, reply.body[-500:]
        cookie = reply.headers.get("set-cookie", "").split(";")[0]
        return kernel.group(1), cookie


def wait_until_up(server: Server, timeout: float = 60) -> None:
    """Until a static file answers 200 (GET / would start a kernel); fail if Voilà exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"Voilà exited with {server.proc.returncode}\n{tail(server.log_text())}")
        with contextlib.suppress(OSError):
            if http_get(server.port, "/voila/static/voila.js", timeout=5).status == 200:
                return
        time.sleep(0.25)
    pytest.fail(f"Voilà did not answer within {timeout:.0f} s\n{tail(server.log_text())}")


@contextlib.contextmanager
def voila(tmp: Path, *extra: str) -> Iterator[Server]:
    """Serve a one-cell Image notebook with the playground's configuration."""
    notebook = tmp / "image.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(IMAGE_CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, notebook)
    port = free_port()
    log = tmp / "voila.log"
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={port}"]
    env = clean_env(JUPYTER_TOKEN=TOKEN)
    env.pop("SAMPY_PLAYGROUND_TRUSTED", None)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*cmd, *PLAYGROUND_ARGS, *extra],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log)
    try:
        wait_until_up(server)
        yield server
    finally:
        kill_tree(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with voila(tmp_path_factory.mktemp("voila")) as running:
        yield running


@pytest.fixture(scope="module")
def page(server: Server) -> tuple[str, str]:
    """One page view for the module's tests: its kernel and its login cookie."""
    return server.page_kernel()


# --------------------------------------------------------------------------- the websocket


def kernel_ws(
    server: Server,
    kernel: str,
    cookie: str = "",
    v1: bool = True,
    host: str | None = None,
    origin: str | None = None,
) -> websocket.WebSocket:
    """Open the kernel's channels websocket, offering the v1 subprotocol or not (legacy)."""
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel}/channels?session_id={uuid.uuid4()}"
    options = {"subprotocols": [KERNEL_WS_V1]} if v1 else {}
    if host:
        options["host"] = host
    return websocket.create_connection(
        url, origin=origin or server.base, cookie=cookie, timeout=10, **options
    )


def message(msg_type: str, content: dict) -> dict:
    header = {
        "msg_id": uuid.uuid4().hex,
        "username": "test",
        "session": uuid.uuid4().hex,
        "msg_type": msg_type,
        "version": "5.3",
        "date": "2026-01-01T00:00:00Z",
    }
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content}


def send(ws: websocket.WebSocket, msg_type: str, content: dict, v1: bool = True) -> None:
    msg = message(msg_type, content)
    if v1:
        ws.send_binary(serialize_msg_to_ws_v1(msg, "shell", pack=lambda o: json.dumps(o).encode()))
    else:
        ws.send(json.dumps({**msg, "channel": "shell", "buffers": []}))


def receive(
    ws: websocket.WebSocket, seconds: float, until: Callable[[list], bool] = lambda got: False
) -> list[tuple[str, dict, dict, int]]:
    """(msg_type, content, header, number of binary buffers) of the v1 messages received in
    ``seconds``, or until ``until(received so far)`` holds."""
    got = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until(got):
        ws.settimeout(max(0.05, end - time.monotonic()))
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        _channel, parts = deserialize_msg_from_ws_v1(raw)
        header, content = json.loads(parts[0]), json.loads(parts[3])
        got.append((header["msg_type"], content, header, len(parts) - 4))
    return got


def widget_comms(ws: websocket.WebSocket) -> list[str]:
    send(ws, "comm_info_request", {"target_name": "jupyter.widget"})
    replies = receive(ws, 10, lambda got: got and got[-1][0] == "comm_info_reply")
    for msg_type, content, _header, _n in replies:
        if msg_type == "comm_info_reply":
            return list(content["comms"])
    pytest.fail("no comm_info_reply")


# --------------------------------------------------------------------------- the tests


def test_make_playground_prints_a_token_url_and_serves_only_with_it(tmp_path: Path) -> None:
    """`make playground` as a user runs it: the explorer behind the token it prints."""
    if shutil.which("make") is None or not (REPO_ROOT / ".venv" / "bin" / "voila").exists():
        pytest.skip("`make playground` needs make and the project's .venv (`make venv`)")
    port = free_port()
    log = tmp_path / "make.log"
    env = {
        k: v
        for k, v in clean_env().items()
        if k not in ("JUPYTER_TOKEN", "SAMPY_PLAYGROUND_TRUSTED", "MAKEFLAGS", "MFLAGS")
    }
    # -o: never reinstall the venv from inside a test, even if requirements*.txt is newer.
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", "playground", f"PORT={port}"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            url = re.search(
                rf"http://127\.0\.0\.1:{port}/\?token=([0-9a-f]{{16,}})", log.read_text()
            )
            time.sleep(0.25)
        assert url, f"no URL with a token printed:\n{tail(log.read_text())}"
        token = url.group(1)

        login = http_get(port, "/")
        assert login.status == 302 and "/login" in login.headers["location"], login
        assert http_get(port, "/?token=not-the-token").status == 302
        assert http_get(port, f"/?token={token}", host=f"evil.example:{port}").status == 403

        page = http_get(port, f"/?token={token}")  # runs the explorer
        assert page.status == 200, page.body[-2000:]
        assert "kernelId" in page.body
        assert "cdn.jsdelivr.net" not in page.body
        assert "jupyterlab-jupytext" not in page.body  # the labextension is not loaded
    finally:
        kill_tree(proc)


def test_legacy_websocket_cannot_freeze_the_server(server: Server, page: tuple[str, str]) -> None:
    """Review A1: request_state for an Image over a legacy-protocol socket froze Voilà."""
    kernel, cookie = page
    before = rss_mb(server.proc.pid)

    try:
        legacy = kernel_ws(server, kernel, cookie, v1=False)
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 400
    else:  # the guard is off: send the freezing message and let the checks below fail
        send(legacy, "comm_info_request", {"target_name": "jupyter.widget"}, v1=False)
        comms: list[str] = []
        deadline = time.monotonic() + 10
        while not comms and time.monotonic() < deadline:
            reply = json.loads(legacy.recv())
            if reply["msg_type"] == "comm_info_reply":
                comms = list(reply["content"]["comms"])
        for comm in comms:
            send(legacy, "comm_msg", {"comm_id": comm, "data": {"method": "request_state"}}, False)
        time.sleep(3)

    start = time.monotonic()
    assert http_get(server.port, "/voila/static/voila.js", timeout=5).status == 200
    assert time.monotonic() - start < 5
    growth = rss_mb(server.proc.pid) - before
    assert growth < RSS_GROWTH_LIMIT_MB, f"server RSS grew by {growth:.0f} MB"

    # The browser's protocol still works: the Image's state comes back with its PNG buffer.
    ws = kernel_ws(server, kernel, cookie)
    assert ws.subprotocol == KERNEL_WS_V1
    buffers = 0
    for comm in widget_comms(ws):
        send(ws, "comm_msg", {"comm_id": comm, "data": {"method": "request_state"}})

    def is_image_state(reply: tuple) -> bool:
        msg_type, content, _header, _n = reply
        state = content.get("data", {}).get("state", {}) if msg_type == "comm_msg" else {}
        return state.get("_model_name") == "ImageModel"

    for reply in receive(ws, 10, lambda got: any(map(is_image_state, got))):
        if is_image_state(reply):
            buffers = reply[3]
    ws.close()
    assert buffers == 1


def test_token_is_required_for_page_and_websocket(server: Server, page: tuple[str, str]) -> None:
    assert http_get(server.port, "/").status == 302
    kernel, cookie = page
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        kernel_ws(server, kernel)  # no cookie, no token
    assert refused.value.status_code == 403
    kernel_ws(server, kernel, cookie).close()


def test_foreign_host_and_origin_are_refused(server: Server, page: tuple[str, str]) -> None:
    """Review A4: DNS rebinding (a foreign Host) and a foreign Origin on the websocket."""
    evil = f"evil.example:{server.port}"
    assert http_get(server.port, f"/?token={TOKEN}", host=evil).status == 403
    assert http_get(server.port, "/logout", host=evil).status == 403
    assert http_get(server.port, "/logout", host=f"localhost:{server.port}").status == 200
    kernel, cookie = page
    for options in ({"host": evil, "origin": f"http://{evil}"}, {"origin": "http://evil.example"}):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            kernel_ws(server, kernel, cookie, **options)
        assert refused.value.status_code == 403, options


def test_logout_and_template_paths_answer_without_a_server_error(server: Server) -> None:
    """Review B6: /logout and /voila/templates/ answered 500."""
    assert http_get(server.port, "/logout").status == 200
    for path in (
        "/voila/templates/",
        "/voila/templates/lab",
        "/voila/templates/lab/static",
        "/voila/templates/no-such-template/static/x.js",
        "/voila/templates/lab/nostatic/x.js",
    ):
        assert http_get(server.port, path).status == 404, path
    assert "Uncaught exception" not in server.log_text()


def test_hostile_comm_open_sends_no_traceback_to_the_client(
    server: Server, page: tuple[str, str]
) -> None:
    """Review B6: a comm_open with a made-up widget model got a Python traceback back."""
    kernel, cookie = page
    ws = kernel_ws(server, kernel, cookie)
    receive(ws, 1)  # the connection's own status messages
    hostile = {"_model_name": "__import__('os').system('id')", "_model_module": "os"}
    send(ws, "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "jupyter.widget",
                           "data": {"state": hostile, "buffer_paths": []}})  # fmt: skip
    send(ws, "comm_open", {"comm_id": uuid.uuid4().hex, "target_name": "no.such.target"})
    # Both comms are closed by the kernel; wait a little longer for anything after them.
    replies = receive(ws, 10, lambda got: [r[0] for r in got].count("comm_close") == 2)
    replies += receive(ws, 0.5)
    ws.close()
    kinds = [msg_type for msg_type, *_ in replies]
    assert kinds.count("comm_close") == 2, kinds  # the kernel refused both comms
    assert "stream" not in kinds, [r for r in replies if r[0] == "stream"]
    assert "Traceback" not in json.dumps([content for _, content, *_ in replies])
    assert "Exception opening comm with target: jupyter.widget" in server.log_text()


def test_oversized_websocket_message_closes_only_that_socket(
    server: Server, page: tuple[str, str]
) -> None:
    kernel, cookie = page
    ws = kernel_ws(server, kernel, cookie)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        # over the configured 1 MiB: the server may reset the socket while the message is
        # still being sent (ConnectionResetError) or close it after (on the next recv)
        ws.send_binary(b"\0" * (2 * 1024 * 1024))
        for _ in range(50):
            ws.settimeout(5)
            ws.recv()
    assert http_get(server.port, "/voila/static/voila.js", timeout=5).status == 200


def test_a_client_cannot_shut_its_kernel_down(server: Server, page: tuple[str, str]) -> None:
    """Review B6: after a client's shutdown_request, Voilà restarted a bare kernel."""
    kernel, cookie = page
    before = descendants(server.proc.pid)
    ws = kernel_ws(server, kernel, cookie)
    msg = message("shutdown_request", {"restart": False})
    ws.send_binary(serialize_msg_to_ws_v1(msg, "control", pack=lambda o: json.dumps(o).encode()))
    time.sleep(3)
    assert descendants(server.proc.pid) == before  # the same kernel process, not restarted
    assert "shutdown_request" in "".join(
        line for line in server.log_text().splitlines() if "not allowed" in line
    )
    assert widget_comms(ws)  # the kernel still holds the page's widgets
    ws.close()


def test_idle_kernels_are_culled_and_their_number_is_capped(tmp_path: Path) -> None:
    """Review A3: every page view left a ~125 MB kernel that was never reclaimed."""
    short = (
        "--PlaygroundKernelManager.max_kernels=1",
        "--MappingKernelManager.cull_idle_timeout=2",
        "--MappingKernelManager.cull_interval=1",
    )
    with voila(tmp_path, *short) as capped:
        capped.page_kernel()
        full = http_get(capped.port, f"/?token={TOKEN}")
        assert full.status == 503
        assert "The playground is full" in full.body
        assert len(descendants(capped.proc.pid)) == 1
        deadline = time.monotonic() + 30
        while descendants(capped.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not descendants(capped.proc.pid), "idle kernels were not culled"
        assert "Culling kernels" in capped.log_text()
        capped.page_kernel()  # room again
