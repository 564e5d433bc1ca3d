"""Views of the evaluation requests for reading them fast: the same wire format, cheaper to decode.

In Python, reading a protobuf message costs a wrapper object per nested message touched. An
``EvaluateRequest`` holds its inputs as ``map<string, Value>``: a map entry and a ``Value``
message per input, so a request with 30 inputs costs some 60 wrappers and as many look-ups
before any scoring starts — more time than the scoring itself. ``EvaluateRequestView`` declares
the very same fields with the very same numbers, except ``inputs``: ``repeated bytes``, each item
one map entry (``InputEntryView``: the name, and the ``Value`` encoded) exactly as received. An
entry is then a few bytes that ``convert.evaluation_from_pb`` reads at once when it has seen the
same bytes before (an input name with a value that recurs: points, counts, shares), and decodes
otherwise. For the audit log, ``BytesList`` gives the items of a batch request or response as
their bytes, and ``ResponseHead`` the few fields of a response that the log has columns for.

They are built here from the generated descriptors, not written in a .proto file, so they
cannot drift from ``EvaluateRequest``; they are the service's own, not part of the API (nothing
in ``ScoringService`` names them, and reflection does not list them). The encoding of a view is
a valid encoding of the real message and the other way round: ``EvaluateRequest.FromString(
view.SerializeToString())`` gives the request as it was sent.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .protos import pb

PACKAGE = "bagalau.v1.views"
_FILE = "bagalau/v1/service_views.proto"


def _build():
    pool = descriptor_pool.Default()
    try:  # built already (the module was reloaded)
        pool.FindFileByName(_FILE)
    except KeyError:
        pool.Add(_file())
    names = ("InputEntryView", "EvaluateRequestView", "EvaluateBatchRequestView", "BytesList", "ResponseHead")
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}")) for name in names)


def _file() -> descriptor_pb2.FileDescriptorProto:
    scoring = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(scoring)
    messages = {m.name: m for m in scoring.message_type}
    field = descriptor_pb2.FieldDescriptorProto
    view = descriptor_pb2.FileDescriptorProto(name=_FILE, package=PACKAGE, syntax="proto3",
                                              dependency=[pb.DESCRIPTOR.name, *scoring.dependency])

    entry = view.message_type.add(name="InputEntryView")  # a map entry, as on the wire
    entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)

    request = view.message_type.add(name="EvaluateRequestView")
    for f in messages["EvaluateRequest"].field:
        if f.name == "inputs":  # each map entry as the bytes received
            request.field.add(name="inputs", number=f.number, type=field.TYPE_BYTES, label=field.LABEL_REPEATED,
                              json_name=f.json_name)
        else:
            request.field.add().CopyFrom(f)  # type names are fully qualified: .bagalau.v1.Subject, ...

    batch = view.message_type.add(name="EvaluateBatchRequestView")
    batch.field.add(name="items", number=1, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
                    type_name=f".{PACKAGE}.EvaluateRequestView")

    # Field 1 repeated, each item as its bytes: the items of an EvaluateBatchRequest or of an
    # EvaluateBatchResponse.
    items = view.message_type.add(name="BytesList")
    items.field.add(name="items", number=1, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)

    # An EvaluateResponse without what it is long for (values, grades, explanation): the audit log's
    # columns. (A scored item's response echoes its request's request_id and subject.)
    head = view.message_type.add(name="ResponseHead")
    for f in messages["EvaluateResponse"].field:
        if f.name in ("request_id", "evaluation_id", "methodology", "version", "content_hash", "error", "subject"):
            head.field.add().CopyFrom(f)
    return view


InputEntryView, EvaluateRequestView, EvaluateBatchRequestView, BytesList, ResponseHead = _build()


def to_request(view) -> pb.EvaluateRequest:
    """The EvaluateRequest a view (or a request) holds."""
    if isinstance(view, pb.EvaluateRequest):
        return view
    return pb.EvaluateRequest.FromString(view.SerializeToString())


def to_view(request):
    """The view of an EvaluateRequest (a view is returned as it is)."""
    if isinstance(request, EvaluateRequestView):
        return request
    return EvaluateRequestView.FromString(request.SerializeToString())
