"""Helpers for the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import grpc

from service.protos import pb
from service.server import ScoringServer
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

DEMO_RULES = '''methodology demo version "1"
  title kk "Демо" en "Demo"
  basis "test order"
  effective from 2020-01-01
  status in_force
  subjects central, local

input a : points 0..10 kk "А" en "A"
score total kk "Жиыны" en "Total" max 10 = a
'''


def acceptance_request(request_id: str = "justice-2019", **overrides) -> pb.EvaluateRequest:
    """org-development 2020 with supplied personnel 87.72 and it 97.98: block 92.9, high."""
    fields = dict(request_id=request_id, methodology="org-development", version="2020",
                  subject=pb.Subject(id="ministry-of-justice", kind="central"),
                  inputs={"personnel": pb.Value(decimal="87.72"), "it": pb.Value(decimal="97.98")}, only=["block"])
    fields.update(overrides)
    return pb.EvaluateRequest(**fields)


def assert_acceptance(response: pb.EvaluateResponse) -> None:
    assert not response.HasField("error"), response.error
    assert response.values["block"] == "92.9"
    assert response.grades["block"] == "high"
    assert response.methodology == "org-development" and response.version == "2020"


def settings_for(tmp_path: Path, **overrides) -> Settings:
    values = dict(address="127.0.0.1:0", rules=RULES, audit=f"sqlite:///{tmp_path / 'audit.db'}", metrics_port=0,
                  reload=False, grace_seconds=1, log_format="json")
    values.update(overrides)
    return Settings(**values)


def channel_to(server: ScoringServer, **options) -> grpc.Channel:
    return grpc.insecure_channel(server.address, options=list(options.items()))
