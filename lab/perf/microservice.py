"""What a user would build instead of Triton: a FastAPI app around the same pipeline.

It speaks the OpenAI embeddings API (`POST /v1/embeddings`), the shape most embedding services
copy, which also lets perf_analyzer drive it (`--service-kind openai`) with the same load
generator and the same data set as Triton. It handles one request at a time: the endpoint is a
coroutine that runs the model on the event loop, the way such services are usually written.

Run it as its own process (as a real service would be):
    python -m lab.perf.microservice --port 8080
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, HTTPException
from inference_tools.local_server import LOOPBACK, free_port, log_tail
from inference_tools.paths import MODEL_REPOSITORY
from inference_tools.subprocesses import ManagedService, stop_process
from pydantic import BaseModel

from lab.perf.inprocess_baseline import EmbeddingPipeline

ENDPOINT = "v1/embeddings"
MODEL_NAME = "all-MiniLM-L6-v2"


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str = MODEL_NAME


class EmbeddingItem(BaseModel):
    object: str = "embedding"
    index: int
    embedding: list[float]


class EmbeddingResponse(BaseModel):
    object: str = "list"
    model: str
    data: list[EmbeddingItem]


def create_app(pipeline: EmbeddingPipeline) -> FastAPI:
    app = FastAPI(title="text embeddings (baseline)")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"/{ENDPOINT}")
    async def embeddings(request: EmbeddingRequest) -> EmbeddingResponse:
        texts = [request.input] if isinstance(request.input, str) else request.input
        if not texts:
            raise HTTPException(status_code=400, detail="input is empty")
        vectors = pipeline.embed(texts)
        return EmbeddingResponse(
            model=request.model,
            data=[EmbeddingItem(index=i, embedding=v.tolist()) for i, v in enumerate(vectors)],
        )

    return app


class MicroserviceProcess(ManagedService):
    """The app under uvicorn in a child process on a loopback port; a context manager."""

    def __init__(self, model_repository: Path, log_path: Path, port: int = 0) -> None:
        self.model_repository = model_repository
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    __name__,
                    "--port",
                    str(self.port),
                    "--model-repository",
                    str(self.model_repository),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the microservice exited with {self.process.returncode}:\n"
                    f"{log_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(f"http://{self.url}/health", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the microservice was not up after {timeout_s:.0f}s")

    def stop(self) -> None:
        stop_process(self.process, timeout_s=10)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--model-repository", type=Path, default=MODEL_REPOSITORY)
    args = parser.parse_args(argv)
    app = create_app(EmbeddingPipeline(args.model_repository))
    # One worker process, no access log: the usual way to run a small service.
    uvicorn.run(app, host=args.host, port=args.port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
