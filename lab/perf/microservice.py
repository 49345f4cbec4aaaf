"""What a user would build instead of Triton: a FastAPI app around the same pipeline.

It speaks the OpenAI embeddings API (`POST /v1/embeddings`), the shape most embedding services
copy, which also lets perf_analyzer drive it (`--service-kind openai`) with the same load
generator and the same data set as Triton. It is the service a competent user writes, with the
settings we gave ourselves: the ONNX Runtime session options of the served encoder (its intra-op
threads, spinning off), and a plain `def` endpoint, which FastAPI runs on its threadpool,
limited to as many model calls at once as Triton runs encoder instances: the same CPU budget.
(An `async def` endpoint would run the model on the event loop, one request at a time.)

Run it as its own process (as a real service would be):
    python -m lab.perf.microservice --port 8080
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, HTTPException
from inference_tools.commands.options import add_model_repository
from inference_tools.local_server import LOOPBACK, free_port, log_tail
from inference_tools.perf.perf_analyzer import PerfAnalyzerSettings
from inference_tools.subprocesses import ManagedService, answers, stop_process, wait_until_ready
from pydantic import BaseModel

from lab.perf.inprocess_baseline import (
    EmbeddingPipeline,
    encoder_instances,
    served_session_options,
    served_settings_text,
)

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


def create_app(pipeline: EmbeddingPipeline, workers: int) -> FastAPI:
    """`workers`: how many requests run the model at once (FastAPI's threadpool size)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync endpoints run on anyio's default thread limiter (40 threads): bound it to the
        # CPU budget, as Triton's encoder instances bound the server's model calls.
        anyio.to_thread.current_default_thread_limiter().total_tokens = workers
        yield

    app = FastAPI(title="text embeddings (baseline)", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"/{ENDPOINT}")
    def embeddings(request: EmbeddingRequest) -> EmbeddingResponse:
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

    def __init__(
        self, model_repository: Path, log_path: Path, port: int = 0, workers: int | None = None
    ) -> None:
        self.model_repository = model_repository
        self.port = port or free_port()
        self.log_path = log_path
        self.workers = workers or encoder_instances(model_repository)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def settings_text(self) -> str:
        """How the baseline runs, for the report."""
        return (
            f"FastAPI under uvicorn, one process, a sync endpoint on a threadpool of "
            f"{self.workers} (the encoder's instances in Triton); the served encoder's "
            f"session options: {served_settings_text(self.model_repository)}"
        )

    @property
    def url(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def perf_settings(self, triton: PerfAnalyzerSettings, input_data: Path) -> PerfAnalyzerSettings:
        """perf_analyzer's settings for this service: Triton's (windows, stability) with the
        OpenAI client, this service's address and the data set as OpenAI requests."""
        return replace(
            triton,
            url=self.url,
            protocol="http",
            service_kind="openai",
            endpoint=ENDPOINT,
            model=MODEL_NAME,
            input_data=input_data,
            metrics_url=None,
            # The OpenAI client of perf_analyzer 2.51 only runs asynchronously.
            extra_args=("--async",),
        )

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
                    "--workers",
                    str(self.workers),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        why = wait_until_ready(
            lambda: answers(f"http://{self.url}/health", timeout_s=1),
            self.process,
            timeout_s,
            interval_s=0.2,
        )
        if why is None:
            return
        if self.process.poll() is not None:
            raise RuntimeError(f"the microservice {why}:\n{log_tail(self.log_path)}")
        self.stop()
        raise RuntimeError(f"the microservice was {why}")

    def stop(self) -> None:
        stop_process(self.process, timeout_s=10)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default=LOOPBACK)
    add_model_repository(parser, help="repository whose embedding pipeline the service runs")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="model calls at once (default: the encoder's instance count in the repository)",
    )
    args = parser.parse_args(argv)
    pipeline = EmbeddingPipeline(
        args.model_repository, options=served_session_options(args.model_repository)
    )
    app = create_app(pipeline, args.workers or encoder_instances(args.model_repository))
    # One process (its threads run the model in parallel: ONNX Runtime releases the GIL while
    # it runs), no access log: the usual way to run a small service.
    uvicorn.run(app, host=args.host, port=args.port, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
