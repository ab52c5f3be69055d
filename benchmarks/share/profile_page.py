"""Where the workstation patient page's time goes, in-process (no HTTP): statements sent, rows and bytes
fetched, JSON parsing, building the view, rendering the template — then a cProfile of the whole handler.

Run: ``python benchmarks/share/profile_page.py [--extra 4960] [--backend sqlite|postgres] [--repeat 5]``.
Writes nothing but stdout. The figures are what ``RESULTS.md`` quotes under "profile".
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import event  # noqa: E402

from hutong.api.app import create_app, node_store  # noqa: E402
from hutong.config import load_settings  # noqa: E402
from hutong.core.caller import Caller  # noqa: E402
from hutong.share import demo, pages  # noqa: E402

PG = os.environ.get("HUTONG_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")


def _store(backend: str, tmp: Path):
    if backend == "sqlite":
        return node_store(load_settings(data_dir=tmp, workers=False)), None
    import psycopg

    schema = "prof_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG}?options=-csearch_path%3D{schema}"
    return node_store(load_settings(data_dir=tmp, workers=False, database_url=url)), schema


def _request(app, path: str):
    from starlette.requests import Request

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"accept", b"text/html"), (b"host", b"bench")], "app": app, "state": {},
             "scheme": "http", "server": ("bench", 80), "client": ("127.0.0.1", 1), "root_path": ""}
    return Request(scope)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", type=int, default=4960)
    ap.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--patient", default="demo-p1")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prof-share-"))
    store, schema = _store(args.backend, tmp)
    try:
        demo.load_demo(store, extra=args.extra)
        demo.publish_demo_document(store)
        app = create_app(store=store).node.services["fastapi"]
        statements = [0]

        @event.listens_for(store.engine, "before_cursor_execute")
        def _count(*_a, **_k):
            statements[0] += 1

        caller = Caller(client_id="prof", institution="demo-h2", roles=frozenset({"clinician"}), auth="gateway")

        def handler():
            req = _request(app, f"/workstation/patient/{args.patient}")
            req.state.caller = caller
            return pages.patient_page(args.patient, req, caller, inst="", type="", since="", until="", linked=True)

        handler()  # warm (templates compiled, catalogs read)
        walls, sizes = [], []
        for _ in range(args.repeat):
            statements[0] = 0
            t0 = time.perf_counter()
            resp = handler()
            walls.append((time.perf_counter() - t0) * 1000)
            sizes.append(len(resp.body))
        print(f"backend {args.backend}, patient {args.patient}, extra {args.extra}")
        print(f"handler: median {statistics.median(walls):.1f} ms (n={len(walls)}), HTML {sizes[-1] / 1024:.0f} KiB, "
              f"SQLAlchemy-level statements in the last run: {statements[0]} (raw driver statements not counted)")
        timing = resp.headers.get("server-timing")
        if timing:
            print(f"Server-Timing of the last run: {timing}")
        prof = cProfile.Profile()
        prof.enable()
        handler()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    finally:
        store.close() if hasattr(store, "close") else None
        if schema:
            import psycopg

            with psycopg.connect(PG, autocommit=True) as c:
                c.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
