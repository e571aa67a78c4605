"""The web console: pampad serves the built app on the API's port, WebSockets
open with single-use tickets (never the token in a URL), keys typed through
the API reach the guest; then the end-to-end tests in tests/e2e drive the
console in Debian's headless chromium against this real pampad and guest."""
import gzip
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

from pampa_harness import BUILD, GUEST, PAMPA, WebSocket

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
E2E = os.path.join(ROOT, "tests/e2e")


def get(port, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def typist(pampad):
    pampad.create_guest("wt")
    pampad.cli("vm", "start", "wt")
    pampad.wait_console("wt", "pampa-guest: ready")
    yield pampad
    pampad.cli("vm", "stop", "wt", check=False)
    pampad.cli("vm", "delete", "wt", check=False)


def test_the_console_is_served_on_the_api_port_without_a_token(pampad):
    st, headers, body = get(pampad.port, "/")
    assert st == 200 and b"<html" in body.lower()
    assert headers["Cache-Control"] == "no-cache" and "default-src 'self'" in headers["Content-Security-Policy"]
    assets = re.findall(rb'(?:src|href)="\.?(/assets/[^"]+\.js)"', body)
    assert assets, body[:500]
    st, headers, packed = get(pampad.port, assets[0].decode(), {"Accept-Encoding": "gzip"})
    assert st == 200 and headers["Content-Encoding"] == "gzip" and "immutable" in headers["Cache-Control"]
    assert len(gzip.decompress(packed)) > len(packed)
    # The files need no token; the API still does, and nothing outside the build is reachable.
    assert get(pampad.port, "/api/v1/vms")[0] == 401
    assert get(pampad.port, "/../token")[0] == 404
    assert get(pampad.port, "/assets/../../../etc/passwd")[0] == 404


def test_a_ticket_opens_one_websocket_once(pampad):
    where = ("127.0.0.1", pampad.port)
    st, body = pampad.api("POST", "/api/v1/tickets", {"kind": "events"})
    assert st == 200 and body["expires_in"] == 30
    ws = WebSocket(where, "/api/v1/events?ticket=" + body["ticket"])
    assert ws.status == 101
    ws.close()
    again = WebSocket(where, "/api/v1/events?ticket=" + body["ticket"])
    assert again.status == 401
    again.close()
    # The bearer token is not accepted in a URL.
    by_token = WebSocket(where, "/api/v1/events?token=" + pampad.token)
    assert by_token.status == 401
    by_token.close()
    # A ticket needs the token; a console ticket needs a running VM.
    st, body = pampad.api("POST", "/api/v1/tickets", {"kind": "events"}, token="")
    assert st == 401
    st, body = pampad.api("POST", "/api/v1/tickets", {"kind": "vnc", "vm": "nope"})
    assert st == 404 and "nope" in body["error"]
    st, body = pampad.api("POST", "/api/v1/tickets", {"kind": "shell"})
    assert st == 400 and "events, console or vnc" in body["error"]


def test_a_console_ticket_opens_only_its_vm(typist):
    where = ("127.0.0.1", typist.port)
    st, body = typist.api("POST", "/api/v1/tickets", {"kind": "console", "vm": "wt"})
    assert st == 200
    wrong = WebSocket(where, "/api/v1/vms/wt/vnc?ticket=" + body["ticket"])
    assert wrong.status == 401
    wrong.close()
    st, body = typist.api("POST", "/api/v1/tickets", {"kind": "vnc", "vm": "wt"})
    vnc = WebSocket(where, "/api/v1/vms/wt/vnc?ticket=" + body["ticket"])
    assert vnc.status == 101
    assert vnc.recv().startswith(b"RFB 003.")
    vnc.close()


def test_typed_text_reaches_the_guest(typist):
    st, body = typist.api("POST", "/api/v1/vms/wt/sendkey", {"text": "echo typed-$((6*7)) > /dev/ttyS0\n"})
    assert st == 200 and body["sent"] == len("echo typed-$((6*7)) > /dev/ttyS0\n")
    typist.wait_console("wt", "typed-42", timeout=60)
    st, body = typist.api("POST", "/api/v1/vms/wt/sendkey", {"text": "caf\u00e9"})
    assert st == 400 and "US keyboard" in body["error"]
    st, body = typist.api("POST", "/api/v1/vms/wt/sendkey", {"keys": "ctrl-alt-deleet"})
    assert st == 400 and "unknown key 'deleet'" in body["error"]
    st, body = typist.api("POST", "/api/v1/vms/wt/sendkey", {})
    assert st == 400 and "either" in body["error"]


def test_the_console_in_chromium(pampad):
    """tests/e2e/*.test.mjs: sign in, create and start a VM, consoles, snapshots, backup and restore, delete."""
    env = dict(os.environ, PAMPA_URL=f"http://127.0.0.1:{pampad.port}", PAMPA_TOKEN=pampad.token,
               PAMPA_CLI=PAMPA, PAMPA_SOCKET=pampad.sock, PAMPA_GUEST=GUEST, PAMPA_ROOT=pampad.root,
               PAMPA_SHOTS=os.path.join(BUILD, "e2e-shots"))
    tests = sorted(os.path.join(E2E, f) for f in os.listdir(E2E) if f.endswith(".test.mjs"))
    assert tests
    for test in tests:  # one at a time: they share the pampad (and node 18 has no --test-concurrency)
        r = subprocess.run(["node", test], env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{test}:\n" + r.stdout[-8000:] + r.stderr[-4000:]


def put(port, path, data, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="PUT",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_an_image_uploaded_from_the_browser_becomes_a_volume(pampad):
    with open(os.path.join(GUEST, "disk.qcow2"), "rb") as f:
        image = f.read()
    st, body = put(pampad.port, "/api/v1/pools/default/upload/uploaded", image, pampad.token)
    assert st == 202, body
    task = pampad.wait_task(body["task"])
    assert task["state"] == "succeeded", task
    vols = {v["name"]: v for v in pampad.cli_json("volume", "list", "default")}
    assert vols["uploaded"]["format"] == "qcow2"
    staged = os.path.join(pampad.data, "images/.uploads")
    assert not os.path.exists(staged) or os.listdir(staged) == []
    # Refused before the body is stored: the name is taken, no token, no pool; nothing is left behind.
    st, body = put(pampad.port, "/api/v1/pools/default/upload/uploaded", image, pampad.token)
    assert st == 409 and "already exists" in body["error"]
    st, body = put(pampad.port, "/api/v1/pools/default/upload/other", image, "0" * 64)
    assert st == 401
    st, body = put(pampad.port, "/api/v1/pools/nope/upload/other", b"x" * 1000, pampad.token)
    assert st == 404 and "nope" in body["error"]
    # A file that is not what its format says is refused once it is in, and removed.
    st, body = put(pampad.port, "/api/v1/pools/default/upload/other?format=qcow2", b"\0" * 65536, pampad.token)
    assert st == 400 and "qcow2" in body["error"], body
    assert not os.path.exists(staged) or os.listdir(staged) == []
    pampad.cli("volume", "delete", "default", "uploaded")
