"""No request a client can send gets a 500: schemathesis generates requests for every operation in the
OpenAPI document (valid ones, boundary cases and malformed ones) against a live server on both backends."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ST = Path(sys.executable).parent / "st"


@pytest.mark.slow
@pytest.mark.skipif(not ST.exists() and shutil.which("st") is None, reason="schemathesis is a test extra")
def test_no_operation_answers_with_a_server_error(server):
    from tests.conftest import token_for

    # with the bootstrap system client's token, so that the operations run past authentication
    # (tests/security/test_openapi_walk.py walks them without one)
    run = subprocess.run(
        [str(ST if ST.exists() else shutil.which("st")), "run", f"{server}/openapi.json",
         "-H", f"Authorization: Bearer {token_for(server)}",
         "--checks", "not_a_server_error", "--max-examples", "10", "--seed", "20261130", "--workers", "1",
         "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert "generated" in out, out[-3000:]  # it really ran
    # schemathesis also exits non-zero on its own internal errors; only server errors fail this test.
    assert "Server error" not in out and "not_a_server_error" not in out.split("SUMMARY")[-1], out[-5000:]
