"""Audit records of evaluations: built from the messages of a call, and turned back into messages.

The request and response are kept as the deterministic protobuf encoding of the messages, so
decimals stay the strings the caller sent and the very messages come back. Encoding and hashing
happen on the audit writer's thread, not the caller's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf import json_format

from .audit import AuditRecord
from .protos import pb


@dataclass(slots=True)
class PendingEvaluation:
    """An evaluation waiting for the audit writer."""

    evaluation_id: str
    recorded_at: str
    caller: str
    peer: str
    request: pb.EvaluateRequest
    response: pb.EvaluateResponse

    def to_record(self) -> AuditRecord:
        r, s = self.request, self.response
        return AuditRecord(evaluation_id=self.evaluation_id, recorded_at=self.recorded_at, caller=self.caller, peer=self.peer,
                           request_id=r.request_id, methodology=s.methodology, version=s.version,
                           content_hash=s.content_hash, subject_id=r.subject.id, subject_kind=r.subject.kind,
                           request=r.SerializeToString(deterministic=True), response=s.SerializeToString(deterministic=True))


def request_of(record: AuditRecord) -> pb.EvaluateRequest:
    return pb.EvaluateRequest.FromString(record.request)


def response_of(record: AuditRecord) -> pb.EvaluateResponse:
    return pb.EvaluateResponse.FromString(record.response)


def record_to_pb(item: AuditRecord | PendingEvaluation) -> pb.EvaluationRecord:
    out = pb.EvaluationRecord(evaluation_id=item.evaluation_id, caller=item.caller, peer=item.peer)
    if isinstance(item, PendingEvaluation):  # not written yet: no place in the chain so far
        out.request.CopyFrom(item.request)
        out.response.CopyFrom(item.response)
    else:
        out.request.CopyFrom(request_of(item))
        out.response.CopyFrom(response_of(item))
        out.sequence = item.sequence
        out.record_hash = item.record_hash
    out.recorded_at.FromJsonString(item.recorded_at.replace("+00:00", "Z"))
    return out


def record_json(record: AuditRecord) -> str:
    """A record for people (``bagalau audit show``): the messages in the proto3 JSON mapping."""
    body = {name: getattr(record, name) for name in record.__slots__ if name not in ("request", "response")}
    body["request"] = json_format.MessageToDict(request_of(record), preserving_proto_field_name=True)
    body["response"] = json_format.MessageToDict(response_of(record), preserving_proto_field_name=True)
    return json.dumps(body, indent=2, ensure_ascii=False)
