"""Development mode: ``hutong serve`` prints working demo credentials; ``hutong auth token`` prints a
token that the node accepts; production refuses both."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import orjson

from tests.conftest import REPO, _free_port


def _cli(*args, env=None, data_dir=None):
    return subprocess.run([sys.executable, "-m", "hutong.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=120)


def test_serve_prints_working_demo_credentials(tmp_path):
    port = _free_port()
    data = tmp_path / "node"
    log = open(tmp_path / "out.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "hutong.cli", "serve", "--empty", "--port", str(port),
                             "--data-dir", str(data), "--nats", "none"], stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "HUTONG_ENV": "development"},
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "out.txt").read_text()
            time.sleep(0.3)
        printed = (tmp_path / "out.txt").read_text()
        assert "demo-operator" in printed and "curl -s" in printed and base + "/auth/token" in printed
        creds = orjson.loads((data / "demo-credentials.json").read_bytes())
        # the printed curl: an assertion from the CLI, posted to the token endpoint
        assertion = _cli("auth", "assertion", "--data-dir", str(data), "--token-url", base + "/auth/token")
        assert assertion.returncode == 0, assertion.stderr
        r = httpx.post(base + "/auth/token", data={
            "grant_type": "client_credentials", "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion.stdout.strip()})
        assert r.status_code == 200, r.text
        assert httpx.get(base + "/fhir/Patient", headers={"Authorization": "Bearer " + r.json()["access_token"]}
                         ).status_code == 200
        # hutong auth token
        token = _cli("auth", "token", "--data-dir", str(data))
        assert token.returncode == 0, token.stderr
        assert httpx.get(base + "/fhir/Patient", headers={"Authorization": "Bearer " + token.stdout.strip()}
                         ).status_code == 200
        # the printed doctor login works
        doctor = creds["users"]["demo-doctor"]
        assert re.search(r"demo-doctor\s+password " + re.escape(doctor["password"]), printed)
        with httpx.Client(base_url=base) as c:
            page = c.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"username": "demo-doctor", "password": doctor["password"], "csrf_token": csrf})
            assert r.status_code == 303 and r.headers["location"] == "/workstation"
            assert c.get("/api/security/whoami").json()["roles"] == ["clinician"]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()


def test_production_refuses_demo(tmp_path):
    data = tmp_path / "node"
    r = _cli("auth", "token", "--data-dir", str(data), env={"HUTONG_ENV": "production"})
    assert r.returncode == 2 and "development mode" in r.stderr
    r = _cli("serve", "--empty", "--data-dir", str(data), "--nats", "none", "--host", "0.0.0.0",
             env={"HUTONG_ENV": "production"})
    assert r.returncode == 2
    assert "HUTONG_WEB_SECRET" in r.stderr and "without TLS" in r.stderr
