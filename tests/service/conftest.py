"""Service tests: a real server on port 0, called with a real client.

The shipped rules are compiled once per session and handed to every in-process server; tests
that change rules work on a temporary copy of the folder holding only what they need.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from dsl.registry import load_registry

try:
    from service.protos import pb_grpc
except ImportError as e:  # the generated code is missing: say how to make it
    raise pytest.UsageError(f"{e}") from None

from service import log
from service.server import ScoringServer
from service_support import DEMO_RULES, PG_URL, RULES, channel_to, settings_for

log.configure("json", "info")  # service logs go to stderr, as in production; stdout is for command output


@pytest.fixture(scope="session")
def shipped_registry():
    return load_registry(RULES)


@pytest.fixture
def start_server(tmp_path, shipped_registry):
    """Start servers with given settings; all are stopped at the end of the test."""
    servers = []

    def start(registry="shipped", **overrides) -> ScoringServer:
        settings = settings_for(tmp_path, **overrides)
        reg = shipped_registry if registry == "shipped" else registry
        server = ScoringServer(settings, reg).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, shipped_registry):
    """One server on the shipped rules, with an SQLite audit log, for the read-mostly RPC tests."""
    tmp = tmp_path_factory.mktemp("shared")
    server = ScoringServer(settings_for(tmp), shipped_registry).start()
    yield server
    server.stop(grace=0)


@pytest.fixture(scope="module")
def stub(shared_server):
    with channel_to(shared_server) as channel:
        yield pb_grpc.ScoringServiceStub(channel)


@pytest.fixture
def small_rules(tmp_path) -> Path:
    """A rules folder with org-development 2020 only (quick to compile) plus a tiny demo methodology."""
    root = tmp_path / "rules"
    (root / "org-development").mkdir(parents=True)
    shutil.copy(RULES / "org-development" / "2020.bgl", root / "org-development" / "2020.bgl")
    (root / "demo").mkdir()
    (root / "demo" / "1.bgl").write_text(DEMO_RULES, encoding="utf-8")
    return root


@pytest.fixture
def pg_url():
    """A uniquely named audit table in the local PostgreSQL, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {str(e).strip().splitlines()[0]}")
    table = f"audit_test_{uuid.uuid4().hex[:12]}"
    yield f"{PG_URL}?table={table}"
    with psycopg.connect(PG_URL, autocommit=True) as db:
        db.execute(f'DROP TABLE IF EXISTS "{table}"')
