"""HTTP requests to one Triton server: directly, or through the Kubernetes API server's proxy."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error_text(self) -> str:
        """Triton's `{"error": "..."}` message, or the raw body."""
        try:
            payload = self.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            return str(payload["error"])
        return self.body.decode(errors="replace")[:500] or f"HTTP {self.status}"


class TritonEndpoint:
    """Where requests to one Triton go. `request` is the one way callers send; each kind of
    endpoint says only how a request, its headers already complete, reaches the server."""

    label: str

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Response:
        """`path` relative to the server's root; Triton's APIs take JSON unless told otherwise."""
        complete = {"Content-Type": "application/json", **(headers or {})}
        return self.send(method, path.lstrip("/"), body, complete, timeout_s)

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float
    ) -> Response:
        raise NotImplementedError


class HttpEndpoint(TritonEndpoint):
    """A server reached directly, e.g. the local one: `127.0.0.1:8000` or `http://host:port`."""

    def __init__(self, url: str) -> None:
        self.base_url = (url if "://" in url else f"http://{url}").rstrip("/")
        self.label = self.base_url

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float
    ) -> Response:
        request = urllib.request.Request(
            f"{self.base_url}/{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return Response(int(response.status), response.read())
        except urllib.error.HTTPError as error:
            return Response(int(error.code), error.read())
