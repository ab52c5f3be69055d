"""A province and city nodes on one machine, as separate processes on loopback (the federation's
test and benchmark, and a way to try the federation out).

Each node is ``hutong serve`` in its own process with its own database (a SQLite file in its own
folder, or a PostgreSQL URL). Each city reaches the province, and the shared broker, through a
``LinkProxy`` of its own: a TCP relay on loopback that can be cut (every connection dropped, new
ones refused) and restored, which is what a city's link failing looks like to the nodes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hutong.federation.localnats import free_port

#: The trusted-gateway key every node of a local cluster shares (cities call the province with it,
#: and the harness reads the nodes with it): see hutong/security/service.py.
CLUSTER_GATEWAY_KEY = os.environ.get("HUTONG_SECURITY_GATEWAY_KEY") or secrets.token_hex(24)


class LinkProxy:
    """A loopback TCP proxy ``127.0.0.1:port`` → ``target`` that can be cut and restored."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._writers: set = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"link-{self.port}", daemon=True)
        self._thread.start()
        self.up = False
        self.restore()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _handle(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(up_writer)

    async def _start(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()  # a link failure, not a polite close
        self._writers.clear()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._call(self._stop())
        self.up = False

    def restore(self) -> None:
        self._call(self._start())
        self.up = True

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class NodeProcess:
    """One ``hutong serve`` process."""

    name: str
    tenant: str
    role: str
    data_dir: Path
    database_url: str = ""
    province_url: str = ""
    nats_url: str = ""
    federation_nats_url: str = ""
    extra_env: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NodeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HUTONG_EVENTS_STREAM=self.extra_env.pop("HUTONG_EVENTS_STREAM", "HUTONG"),
                   HUTONG_SECURITY_GATEWAY_KEY=CLUSTER_GATEWAY_KEY, **self.extra_env)
        env.pop("HUTONG_CONFIG", None)
        args = [sys.executable, "-m", "hutong.cli", "serve", "--empty", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--role", self.role, "--tenant", self.tenant,
                "--nats", self.nats_url or "none", "--log-level", "warning"]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if self.province_url:
            args += ["--province", self.province_url]
        if self.federation_nats_url:
            args += ["--federation-nats", self.federation_nats_url]
        log = open(self.data_dir / "node.log", "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited; see {self.data_dir / 'node.log'}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {self.name} did not start in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def gateway_headers(as_tenant: str | None = None) -> dict:
    """Headers of a trusted caller of a local cluster's node (the harness, a benchmark's writers)."""
    headers = {"X-Hutong-Gateway-Key": CLUSTER_GATEWAY_KEY, "X-Hutong-Role": "system"}
    if as_tenant:
        headers["X-Hutong-Tenant"] = as_tenant
    return headers


def get_json(url: str, path: str, *, as_tenant: str | None = None, **params) -> dict:
    headers = gateway_headers(as_tenant)
    r = httpx.get(url + path, params=params, headers=headers, timeout=120)
    r.raise_for_status()
    return r.json()


def wait_for(check, timeout: float, what: str, every: float = 0.2):
    """Poll ``check()`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


REGISTRY_FILES = ("Organization", "Location", "HealthcareService", "Practitioner", "PractitionerRole")


def split_simulation(sim_dir: Path, out_dir: Path, cities: list[str]) -> dict[str, Path]:
    """Cut a ``hutong simulate --per-institution`` output into what each node loads: the registry of
    the ``cities``' institutions for the province (``out/province``), and each city's institutions'
    Patients and clinical data (``out/{city}``), one NDJSON file per type. Returns the folders."""
    import orjson

    sim_dir, out_dir = Path(sim_dir), Path(out_dir)
    wanted = set(cities)
    city_of: dict[str, str] = {}
    for line in open(sim_dir / "Organization.ndjson", "rb"):
        org = orjson.loads(line)
        for ext in org.get("extension") or []:
            if ext.get("url", "").endswith("/city-platform") and ext["valueCoding"]["code"] in wanted:
                city_of[org["id"]] = ext["valueCoding"]["code"]
    folders = {"province": out_dir / "province", **{c: out_dir / c for c in cities}}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)

    def org_of(res: dict) -> str | None:
        for key in ("managingOrganization", "providedBy", "organization"):
            ref = (res.get(key) or {}).get("reference", "")
            if ref.startswith("Organization/"):
                return ref.split("/", 1)[1]
        return res["id"] if res.get("resourceType") == "Organization" else None

    practitioners: set[str] = set()
    for name in ("Organization", "Location", "HealthcareService", "PractitionerRole"):
        with open(folders["province"] / f"{name}.ndjson", "wb") as out:
            for line in open(sim_dir / f"{name}.ndjson", "rb"):
                res = orjson.loads(line)
                if org_of(res) in city_of:
                    out.write(line)
                    if name == "PractitionerRole":
                        practitioners.add((res.get("practitioner") or {}).get("reference", "").split("/")[-1])
    with open(folders["province"] / "Practitioner.ndjson", "wb") as out:
        for line in open(sim_dir / "Practitioner.ndjson", "rb"):
            if orjson.loads(line)["id"] in practitioners:
                out.write(line)
    handles: dict[tuple[str, str], object] = {}
    try:
        for org, city in sorted(city_of.items()):
            folder = sim_dir / "institutions" / org
            if not folder.exists():
                continue
            for path in sorted(folder.glob("*.ndjson")):
                key = (city, path.name)
                if key not in handles:
                    handles[key] = open(folders[city] / path.name, "ab")
                handles[key].write(path.read_bytes())
    finally:
        for h in handles.values():
            h.close()
    return folders


def load_node(folder: Path, fhir_base: str, *, size: int = 100, attempts: int = 20,
              on_bundle=None) -> dict:
    """POST a folder of NDJSON (``hutong.sim.load.iter_bundles``) as transaction Bundles, the way a
    hospital system would: a 503 or 429 (the node busy, with Retry-After) is retried after the time
    it asks for, since a transaction that failed wrote nothing. Returns ``{"resources", "bundles",
    "errors", "retries", "first_error"}``; ``on_bundle(n)`` is called after each committed Bundle."""
    from hutong.sim.load import iter_bundles

    done = bundles = errors = retries = 0
    first_error = ""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    with httpx.Client(timeout=300) as client:
        for _rtype, n, body in iter_bundles(folder, size, "transaction"):
            for attempt in range(attempts):
                try:
                    r = client.post(fhir_base.rstrip("/"), content=body, headers=headers)
                except httpx.TransportError as exc:  # the node restarting: like a 503
                    status, wait, text = 503, 1.0, repr(exc)
                else:
                    status, text = r.status_code, r.text[:300]
                    wait = float(r.headers.get("retry-after") or 1)
                if status not in (429, 503) or attempt == attempts - 1:
                    break
                retries += 1
                time.sleep(min(wait, 5.0))
            bundles += 1
            if status >= 400:
                errors += n
                first_error = first_error or f"{status}: {text}"
            else:
                done += n
                if on_bundle is not None:
                    on_bundle(n)
    return {"resources": done, "bundles": bundles, "errors": errors, "retries": retries, "first_error": first_error}
