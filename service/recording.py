"""Audit records of evaluations: built from the messages of a call, and turned back into messages.

The request and response of an evaluation are kept as protobuf encodings: the request exactly as
received (in a batch, its item's bytes), the response exactly as returned; so decimals stay the
strings the caller sent and the very messages come back. Records are built and hashed in the
audit writer's process (service/audit_worker.py), not on the caller's thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .audit import AuditRecord
from .protos import pb
from .views import BytesList, ResponseHead, to_request


@dataclass(slots=True)
class PendingEvaluation:
    """An evaluation waiting for the audit writer (``request``: the EvaluateRequest, or its view)."""

    evaluation_id: str
    recorded_at: str
    caller: str
    peer: str
    request: pb.EvaluateRequest
    response: pb.EvaluateResponse

    def to_record(self) -> AuditRecord:
        r, s = to_request(self.request), self.response
        return AuditRecord(evaluation_id=self.evaluation_id, recorded_at=self.recorded_at, caller=self.caller, peer=self.peer,
                           request_id=r.request_id, methodology=s.methodology, version=s.version,
                           content_hash=s.content_hash, subject_id=r.subject.id, subject_kind=r.subject.kind,
                           request=r.SerializeToString(deterministic=True), response=s.SerializeToString(deterministic=True))


def records_from_call(recorded_at: str, caller: str, peer: str, kind: str, request: bytes,
                      response: bytes) -> list[AuditRecord]:
    """The records of one call's successful evaluations, from the call's messages as received and
    as returned (``kind`` "batch": an EvaluateBatchRequest and its EvaluateBatchResponse, item by
    item; "one": an EvaluateRequest and its EvaluateResponse). Each record keeps the bytes of its
    request and of its response as they crossed the wire. Run by the audit writer's process."""
    if kind == "batch":
        pairs = zip(BytesList.FromString(request).items, BytesList.FromString(response).items)
    else:
        pairs = ((request, response),)
    out = []
    for request_bytes, response_bytes in pairs:
        head = ResponseHead.FromString(response_bytes)  # a scored item's response echoes its request's id and subject
        evaluation_id = head.evaluation_id
        if not evaluation_id or head.HasField("error"):  # an item that was not scored is not recorded
            continue
        subject = head.subject
        out.append(AuditRecord(evaluation_id, recorded_at, caller, peer, head.request_id, head.methodology, head.version,
                               head.content_hash, subject.id, subject.kind, request_bytes, response_bytes))
    return out


def request_of(record: AuditRecord) -> pb.EvaluateRequest:
    return pb.EvaluateRequest.FromString(record.request)


def response_of(record: AuditRecord) -> pb.EvaluateResponse:
    return pb.EvaluateResponse.FromString(record.response)


def record_to_pb(item: AuditRecord | PendingEvaluation) -> pb.EvaluationRecord:
    out = pb.EvaluationRecord(evaluation_id=item.evaluation_id, caller=item.caller, peer=item.peer)
    if isinstance(item, PendingEvaluation):  # not written yet: no place in the chain so far
        out.request.CopyFrom(to_request(item.request))
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
    from google.protobuf import json_format

    body = {name: getattr(record, name) for name in record.__slots__ if name not in ("request", "response")}
    body["request"] = json_format.MessageToDict(request_of(record), preserving_proto_field_name=True)
    body["response"] = json_format.MessageToDict(response_of(record), preserving_proto_field_name=True)
    return json.dumps(body, indent=2, ensure_ascii=False)
