#!/usr/bin/env python3
"""triton-http-guard: Triton's HTTP port, minus the requests that Triton 2.51 mishandles.

A reverse proxy in the serving pod, in front of Triton's HTTP endpoint (Triton itself listens on
loopback only). It passes every request through unchanged, except that it first reads the body
and refuses, with 400 and a JSON `{"error": ...}` as Triton words its own refusals:

- JSON nested deeper than `--max-json-depth`: Triton 2.51's JSON parser recurses without a bound,
  and a 500 KB body of 250,000 `[` kills the whole server with SIGSEGV (a depth limit arrived
  upstream in 2.58; no Gateway we support can bound JSON depth);
- a body that is not UTF-8 JSON, or has anything after the JSON value (Triton answers 500 to
  UTF-16 and to trailing garbage, or reads only a prefix);
- a malformed `Inference-Header-Content-Length` (Triton reads `abc` and `0` as "no header" and
  parses binary tensor data as JSON), or binary data whose length disagrees with the header;
- in inference requests: negative or 32-bit-wrapping shapes (Triton multiplies dimensions in 32
  bits: [4294967298, 1] passes as [2, 1]), negative `priority`, `timeout`, `classification` or
  `binary_data_size`, BYTES data that is not strings, numeric data that is not numbers,
  `NaN`/`Infinity`, and FP32/FP16 values beyond their range (Triton turns them into infinities
  and answers with a bare `NaN`, which strict JSON parsers refuse).

Bodies over `--max-body-bytes` get 413 before they are read, like the edge's own cap. Headers,
paths and methods are forwarded as they came: routing decisions stay with the edge and Triton.
gRPC does not pass here: protobuf messages are not recursive and Triton checks them itself.

Standard library only, like the other pod hooks; the image runs it as a native sidecar
(`kustomize/base/triton-deployment.yaml`) and the local server starts it the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# The inference protocol needs request -> inputs -> input -> data, plus one level per tensor
# dimension when data is nested: 32 leaves room for 28 dimensions (Triton allows far fewer).
DEFAULT_MAX_JSON_DEPTH = 32
MAX_HEAD_BYTES = 64 * 1024
IDLE_TIMEOUT_SECONDS = 120.0
BODY_TIMEOUT_SECONDS = 60.0
# Triton keeps a request open while the model runs: the longest queue and compute time is the
# limit here, not the proxy.
RESPONSE_TIMEOUT_SECONDS = 600.0
COPY_CHUNK_BYTES = 256 * 1024
# After a refusal, how long and how much of the rest of a body is read and dropped.
LINGER_SECONDS = 5.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
# Dimensions Triton can hold without wrapping: it computes element counts in 32-bit integers.
MAX_DIMENSION = 2**31 - 1
HEADER_LENGTH = "inference-header-content-length"
HEADER_LENGTH_NAME = "Inference-Header-Content-Length"
# Connection-level headers: they describe one hop and are not forwarded (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
FLOAT_LIMITS = {"FP32": 3.4028234663852886e38, "FP16": 65504.0}
INTEGER_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
FLOAT_TYPES = {"FP16", "FP32", "FP64", "BF16"}
REASONS = {
    400: "Bad Request",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
}


# A side went away or stalled. asyncio.TimeoutError is its own class before Python 3.11 (the
# image's Python is 3.10), so it is named here rather than the builtin TimeoutError.
CONNECTION_ENDED = (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError)


class Refusal(Exception):
    """The request is refused with `status`; `message` tells the client what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> Refusal:
    return Refusal(400, message)


# ---------------------------------------------------------------------------------------------
# What a body may hold


def _reject_constant(token: str) -> float:
    raise _bad(f"'{token}' is not JSON: send finite numbers")


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The JSON value in `raw`, refusing what Triton's parser would mishandle."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _bad(f"the JSON body is not UTF-8 (byte {error.start}); send UTF-8 JSON") from error
    try:
        # Python's parser refuses deep nesting with RecursionError, a bounded, handled failure.
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as error:
        raise _bad(f"the JSON is nested deeper than {max_depth} levels") from error
    except json.JSONDecodeError as error:
        raise _bad(f"the body is not valid JSON: {error}") from error
    depth = json_depth(value)
    if depth > max_depth:
        raise _bad(f"the JSON is nested {depth} levels deep; at most {max_depth} are accepted")
    return value


def json_depth(value: Any) -> int:
    """How many arrays and objects deep `value` goes (iteratively: no recursion to exhaust)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        pending.extend((child, depth) for child in children if isinstance(child, (dict, list)))
    return deepest


def _non_negative_integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{what} must be a non-negative integer, not {json.dumps(value)}")
    return value


def _flatten(data: Any) -> list[Any]:
    flat: list[Any] = []
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def _check_data(name: str, datatype: str, data: Any) -> None:
    values = _flatten(data)
    if datatype == "BYTES":
        wrong = next((v for v in values if not isinstance(v, str)), None)
        if wrong is not None:
            raise _bad(f"input '{name}': BYTES data must be strings, not {json.dumps(wrong)}")
        return
    if datatype == "BOOL":
        wrong = next((v for v in values if not isinstance(v, bool)), None)
        if wrong is not None:
            raise _bad(f"input '{name}': BOOL data must be true or false, not {json.dumps(wrong)}")
        return
    if datatype not in INTEGER_TYPES | FLOAT_TYPES:
        return  # a type this guard does not know: Triton decides
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(f"input '{name}': {datatype} data must be numbers, not {json.dumps(value)}")
        if datatype in INTEGER_TYPES and not isinstance(value, int):
            raise _bad(f"input '{name}': {datatype} data must be integers, not {value}")
    limit = FLOAT_LIMITS.get(datatype)
    if limit is not None:
        beyond = next((v for v in values if not math.isfinite(v) or abs(v) > limit), None)
        if beyond is not None:
            raise _bad(f"input '{name}': {beyond} is beyond the range of {datatype}")


def _check_parameters(parameters: Any, where: str, non_negative: Sequence[str]) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise _bad(f"{where} 'parameters' must be an object")
    for key in non_negative:
        if key in parameters:
            _non_negative_integer(parameters[key], f"{where} parameter '{key}'")


def check_inference_request(request: Any, binary_bytes: int | None) -> None:
    """Refuse the inference requests Triton 2.51 answers wrongly or with a server error.

    `binary_bytes`: how many bytes of binary tensor data follow the JSON header (None: no
    binary part).
    """
    if not isinstance(request, dict):
        raise _bad("an inference request is a JSON object")
    _check_parameters(request.get("parameters"), "request", ("priority", "timeout"))
    inputs = request.get("inputs")
    if not isinstance(inputs, list):
        raise _bad("an inference request needs 'inputs', an array of objects")
    declared_binary = 0
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise _bad(f"inputs[{position}] must be an object")
        name = str(tensor.get("name", f"#{position}"))
        shape = tensor.get("shape")
        if not isinstance(shape, list):
            raise _bad(f"input '{name}': 'shape' must be an array of integers")
        for dim in shape:
            if _non_negative_integer(dim, f"input '{name}': each shape dimension") > MAX_DIMENSION:
                raise _bad(f"input '{name}': dimension {dim} is larger than {MAX_DIMENSION}")
        parameters = tensor.get("parameters")
        _check_parameters(parameters, f"input '{name}'", ("binary_data_size",))
        if isinstance(parameters, dict) and "binary_data_size" in parameters:
            declared_binary += parameters["binary_data_size"]
        elif "data" in tensor:
            _check_data(name, str(tensor.get("datatype", "")), tensor["data"])
    for position, tensor in enumerate(request.get("outputs") or []):
        if not isinstance(tensor, dict):
            raise _bad(f"outputs[{position}] must be an object")
        where = f"output '{tensor.get('name')}'"
        _check_parameters(tensor.get("parameters"), where, ("classification",))
    if binary_bytes is not None and declared_binary != binary_bytes:
        raise _bad(
            f"the inputs declare {declared_binary} bytes of binary data (binary_data_size), "
            f"but {binary_bytes} follow the JSON header"
        )


def split_binary_body(body: bytes, header_length: str | None) -> tuple[bytes, int | None]:
    """The JSON part of a body and the length of the binary part after it (None: no binary)."""
    if header_length is None:
        return body, None
    if not header_length.strip().isdigit():
        raise _bad(f"{HEADER_LENGTH_NAME} must be a number of bytes, not {header_length!r}")
    length = int(header_length)
    if length == 0 or length > len(body):
        raise _bad(
            f"{HEADER_LENGTH_NAME} is {length}, but the JSON header must be between 1 byte and the "
            f"whole body ({len(body)} bytes)"
        )
    return body[:length], len(body) - length


def check_body(path: str, body: bytes, header_length: str | None, max_depth: int) -> None:
    """Refuse `body` where Triton would crash on it, misread it or answer it wrongly."""
    is_inference = path.split("?", 1)[0].rstrip("/").endswith("/infer")
    json_part, binary_bytes = split_binary_body(body, header_length if is_inference else None)
    if not json_part.strip():
        if is_inference:
            # Triton 2.51 runs an inference for an empty body, with whatever it makes of it.
            raise _bad("an inference request needs a JSON body with 'inputs'")
        return  # no JSON to parse; Triton answers an empty body itself
    value = parse_json(json_part, max_depth)
    if is_inference:
        check_inference_request(value, binary_bytes)


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 framing


@dataclass
class Head:
    first_line: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name]
        return values[-1] if values else None

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]

    def wants_close(self, version: str) -> bool:
        tokens = {
            token.strip().lower()
            for value in self.values("connection")
            for token in value.split(",")
        }
        if version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or None at a clean end of the connection."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise _bad("the connection closed in the middle of a request head") from error
        return None
    except asyncio.LimitOverrunError as error:
        raise Refusal(431, f"request head larger than {MAX_HEAD_BYTES} bytes") from error
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _bad(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return Head(lines[0], headers)


def body_length(head: Head) -> int | None:
    """Content-Length as a number; None where the body is chunked or absent."""
    lengths = set(head.values("content-length"))
    encoding = head.get("transfer-encoding")
    if encoding is not None:
        if lengths:
            raise _bad("both Content-Length and Transfer-Encoding: send one")
        if encoding.strip().lower() != "chunked":
            raise _bad(f"Transfer-Encoding {encoding!r} is not supported; send chunked or a length")
        return None
    if len(lengths) > 1:
        raise _bad("conflicting Content-Length headers")
    if not lengths:
        return 0
    value = lengths.pop().strip()
    if not value.isdigit():
        raise _bad(f"Content-Length {value!r} is not a number")
    return int(value)


async def read_chunked(reader: asyncio.StreamReader, limit: int, sink: bytearray | None) -> None:
    """Read a chunked body into `sink` (raw framing kept when `sink` is None: relayed instead)."""
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as error:
            raise _bad("malformed chunk size") from error
        total += size
        if total > limit:
            raise Refusal(413, f"body larger than {limit} bytes")
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers: dropped
            return
        data = await reader.readexactly(size + 2)
        if sink is not None:
            sink += data[:-2]


def error_response(status: int, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


# ---------------------------------------------------------------------------------------------
# The proxy


@dataclass(frozen=True)
class GuardSettings:
    upstream_host: str
    upstream_port: int
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH


class Upstream:
    """One connection to Triton per client connection, opened when first needed."""

    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            try:
                self.reader, self.writer = await asyncio.open_connection(
                    self.settings.upstream_host, self.settings.upstream_port, limit=MAX_HEAD_BYTES
                )
            except OSError as error:
                raise Refusal(502, f"Triton's HTTP endpoint does not answer: {error}") from error
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def relay_response(
    upstream: asyncio.StreamReader, client: asyncio.StreamWriter, method: str
) -> bool:
    """Copy one response to the client. Returns whether the upstream connection can be reused."""
    head = await read_head(upstream)
    if head is None:
        raise ConnectionError("Triton closed the connection without answering")
    client.write(
        (
            head.first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.headers) + "\r\n"
        ).encode("latin-1")
    )
    version, _, rest = head.first_line.partition(" ")
    status = int(rest.split(" ", 1)[0])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return not head.wants_close(version)
    encoding = head.get("transfer-encoding")
    length = head.get("content-length")
    if encoding is not None and encoding.lower() == "chunked":
        while True:
            size_line = await upstream.readuntil(b"\r\n")
            client.write(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:
                    trailer = await upstream.readuntil(b"\r\n")
                    client.write(trailer)
                    if trailer == b"\r\n":
                        break
                break
            client.write(await upstream.readexactly(size + 2))
            await client.drain()
    elif length is not None:
        remaining = int(length)
        while remaining:
            data = await upstream.read(min(remaining, COPY_CHUNK_BYTES))
            if not data:
                raise ConnectionError("Triton closed the connection mid-response")
            client.write(data)
            remaining -= len(data)
            await client.drain()
    else:
        while data := await upstream.read(COPY_CHUNK_BYTES):
            client.write(data)
            await client.drain()
        return False
    await client.drain()
    return not head.wants_close(version)


async def read_request_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: Head,
    settings: GuardSettings,
) -> bytes:
    length = body_length(head)
    if length is not None and length > settings.max_body_bytes:
        raise Refusal(413, f"body of {length} bytes; at most {settings.max_body_bytes} accepted")
    expect = head.get("expect")
    if expect is not None and expect.lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if length is not None:
        return await reader.readexactly(length)
    body = bytearray()
    await read_chunked(reader, settings.max_body_bytes, body)
    return bytes(body)


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: GuardSettings
) -> None:
    upstream = Upstream(settings)
    try:
        while True:
            try:
                head = await asyncio.wait_for(read_head(reader), IDLE_TIMEOUT_SECONDS)
                if head is None:
                    return
                method, target, version = _request_line(head.first_line)
                body = await asyncio.wait_for(
                    read_request_body(reader, writer, head, settings), BODY_TIMEOUT_SECONDS
                )
                if body or method == "POST":
                    check_body(target, body, head.get(HEADER_LENGTH), settings.max_json_depth)
            except Refusal as refusal:
                writer.write(error_response(refusal.status, refusal.message))
                await writer.drain()
                await linger(reader)
                return
            except CONNECTION_ENDED:
                return
            try:
                up_reader, up_writer = await upstream.connection()
            except Refusal as refusal:
                writer.write(error_response(refusal.status, refusal.message))
                await writer.drain()
                return
            forwarded = [(k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP]
            if body or method in ("POST", "PUT", "PATCH"):
                forwarded.append(("Content-Length", str(len(body))))
            up_writer.write(
                (
                    f"{method} {target} HTTP/1.1\r\n"
                    + "".join(f"{k}: {v}\r\n" for k, v in forwarded)
                    + "\r\n"
                ).encode("latin-1")
                + body
            )
            await up_writer.drain()
            reusable = await asyncio.wait_for(
                relay_response(up_reader, writer, method), RESPONSE_TIMEOUT_SECONDS
            )
            if not reusable:
                upstream.close()
            if head.wants_close(version):
                return
    except CONNECTION_ENDED:
        return  # either side went away: close both, as a direct connection would have
    finally:
        upstream.close()
        writer.close()


async def linger(reader: asyncio.StreamReader) -> None:
    """Read and drop what the client still sends, for a while, before closing.

    A client refused before its body was read (413) is often still sending it; closing at once
    would reset the connection and lose the answer it has not read yet (nginx lingers the same
    way, `lingering_close`).
    """
    deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
    dropped = 0
    try:
        while dropped < LINGER_MAX_BYTES:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            data = await asyncio.wait_for(reader.read(COPY_CHUNK_BYTES), left)
            if not data:
                return
            dropped += len(data)
    except CONNECTION_ENDED:
        return


def _request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _bad(f"malformed request line {line[:80]!r}")
    return parts[0], parts[1], parts[2]


async def run_guard(listen_host: str, listen_port: int, settings: GuardSettings) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, settings),
        listen_host,
        listen_port,
        limit=MAX_HEAD_BYTES,
        reuse_address=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = server.sockets[0].getsockname()
    print(
        f"triton-http-guard: listening on {address[0]}:{address[1]}, forwarding to "
        f"{settings.upstream_host}:{settings.upstream_port}",
        flush=True,
    )
    async with server:
        await stop.wait()


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-http-guard",
        description=(
            "Reverse proxy in front of Triton's HTTP endpoint that refuses, with 400, the bodies "
            "Triton 2.51 crashes on or misreads: JSON nested too deep, non-UTF-8 or trailing "
            "data, malformed binary-tensor headers, negative or wrapping shapes and parameters, "
            "data of the wrong type or out of range. Everything else passes unchanged."
        ),
    )
    parser.add_argument(
        "--listen",
        type=_host_port,
        default=("0.0.0.0", 8000),
        help="HOST:PORT clients connect to (default 0.0.0.0:8000)",
    )
    parser.add_argument(
        "--upstream",
        type=_host_port,
        default=("127.0.0.1", 8003),
        help="HOST:PORT of Triton's HTTP endpoint (default 127.0.0.1:8003)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted (default {DEFAULT_MAX_BODY_BYTES}, the edge's cap)",
    )
    parser.add_argument(
        "--max-json-depth",
        type=int,
        default=DEFAULT_MAX_JSON_DEPTH,
        help=f"deepest JSON nesting accepted (default {DEFAULT_MAX_JSON_DEPTH})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = GuardSettings(
        upstream_host=args.upstream[0],
        upstream_port=args.upstream[1],
        max_body_bytes=args.max_body_bytes,
        max_json_depth=args.max_json_depth,
    )
    try:
        asyncio.run(run_guard(args.listen[0], args.listen[1], settings))
    except OSError as error:
        print(f"triton-http-guard: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
