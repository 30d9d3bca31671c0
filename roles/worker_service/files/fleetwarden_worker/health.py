"""Is a server up? The gRPC health check (grpc.health.v1.Health/Check over Debian's python3-grpcio) and a TCP check.

Debian ships grpcio but not grpcio-health-checking, so the two tiny messages are encoded here by hand:
HealthCheckRequest {string service = 1;} and HealthCheckResponse {ServingStatus status = 1;}.
"""

import socket

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
# No proxy (the raylet and GCS are local or in-cluster) and no transparent retries: one check, one answer.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data, at):
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def encode_request(service):
    """HealthCheckRequest in protobuf wire format ("" = the server as a whole: proto3 sends no empty string)."""
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def decode_status(message):
    """HealthCheckResponse bytes -> "SERVING", "NOT_SERVING", ...; unknown fields are skipped, as protobuf does."""
    status, at = 0, 0  # proto3: a status of 0 (UNKNOWN) is not sent
    while at < len(message):
        key, at = _read_varint(message, at)
        field, wire = key >> 3, key & 0x7
        if wire == 0:
            value, at = _read_varint(message, at)
            if field == 1:
                status = value
        elif wire == 2:
            length, at = _read_varint(message, at)
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if at > len(message):
            raise ValueError("truncated field")
    return HEALTH_STATUS.get(status, f"status {status}")


def grpc_health(host, port, timeout=2.0, service=""):
    """(ok, detail): does a gRPC server at host:port answer grpc.health.v1 Check with SERVING within timeout?"""
    import grpc  # here, not above: a probe with no raylet check never loads grpcio (about 15 MiB per process)

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
            check = channel.unary_unary(HEALTH_CHECK, request_serializer=encode_request,
                                        response_deserializer=decode_status)
            status = check(service, timeout=timeout)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return False, f"no answer within {timeout:g}s"
        return False, exc.details() or exc.code().name
    return status == "SERVING", status


def tcp_open(host, port, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, "accepts connections"
    except OSError as exc:
        return False, exc.strerror or str(exc)
