"""TLS and mutual TLS from certificate files; the client certificate names the caller in the audit log."""

from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.protos import pb, pb_grpc
from service_support import acceptance_request, assert_acceptance


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _issue(subject_cn: str, issuer_key, issuer_name, *, ca: bool = False, server: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject_cn)).issuer_name(issuer_name or _name(subject_cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost, and a client certificate for one caller."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _issue("bagalau test CA", None, None, ca=True)
    server_key, server_cert = _issue("localhost", ca_key, ca_cert.subject, server=True)
    client_key, client_cert = _issue("ministry-of-justice", ca_key, ca_cert.subject)
    files = {}
    for name, data in {"ca.pem": ca_cert.public_bytes(serialization.Encoding.PEM),
                       "server.pem": server_cert.public_bytes(serialization.Encoding.PEM), "server.key": _pem_key(server_key),
                       "client.pem": client_cert.public_bytes(serialization.Encoding.PEM), "client.key": _pem_key(client_key)}.items():
        (folder / name).write_bytes(data)
        files[name] = folder / name
    return files


def _channel(server, pki, client_cert: bool) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca.pem"].read_bytes(),
        private_key=pki["client.key"].read_bytes() if client_cert else None,
        certificate_chain=pki["client.pem"].read_bytes() if client_cert else None)
    return grpc.secure_channel(f"localhost:{server.port}", creds)


def test_tls(start_server, pki):
    server = start_server(tls_cert=pki["server.pem"], tls_key=pki["server.key"])
    with _channel(server, pki, client_cert=False) as channel:
        response = pb_grpc.ScoringServiceStub(channel).Evaluate(acceptance_request())
    assert_acceptance(response)
    with grpc.insecure_channel(f"localhost:{server.port}") as plain:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.ScoringServiceStub(plain).Evaluate(acceptance_request(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(start_server, pki):
    server = start_server(tls_cert=pki["server.pem"], tls_key=pki["server.key"], tls_client_ca=pki["ca.pem"])
    with _channel(server, pki, client_cert=True) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        response = stub.Evaluate(acceptance_request())
        assert_acceptance(response)
        server.audit.flush(10)
        record = stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id=response.evaluation_id)).evaluation
        assert record.caller == "ministry-of-justice"
    with _channel(server, pki, client_cert=False) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.ScoringServiceStub(channel).Evaluate(acceptance_request(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_unreadable_certificate_stops_startup(tmp_path, pki):
    from service.server import ScoringServer, StartupError
    from service_support import settings_for

    with pytest.raises(StartupError, match="TLS key"):
        ScoringServer(settings_for(tmp_path, tls_cert=pki["server.pem"], tls_key=tmp_path / "missing.key"))
