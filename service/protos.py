"""The generated protobuf and gRPC modules, imported from ``service/gen`` (built by ``make gen``).

protoc writes ``bagalau/v1/scoring_pb2.py`` with absolute imports (``from bagalau.v1 import …``,
``from google.type import date_pb2``). Rather than rewrite generated files, ``service/gen`` is made
an import root: it is put on ``sys.path`` once, here, and everything else imports from this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

GEN_ROOT = Path(__file__).resolve().parent / "gen"

if not (GEN_ROOT / "bagalau" / "v1" / "scoring_pb2.py").exists():
    raise ImportError(f"the generated gRPC code is missing from {GEN_ROOT}; run `make gen` "
                      "(it compiles proto/bagalau/v1/*.proto)")
if str(GEN_ROOT) not in sys.path:
    sys.path.insert(0, str(GEN_ROOT))

from bagalau.v1 import scoring_pb2 as pb  # noqa: E402

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ScoringService"].full_name  # "bagalau.v1.ScoringService"


def __getattr__(name: str):
    """``pb_grpc`` (the stub and servicer base) is imported on first use: it imports grpc, which
    the audit writer's process does not need."""
    if name == "pb_grpc":
        from bagalau.v1 import scoring_pb2_grpc

        globals()["pb_grpc"] = scoring_pb2_grpc
        return scoring_pb2_grpc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["pb", "pb_grpc", "SERVICE_NAME", "GEN_ROOT"]
