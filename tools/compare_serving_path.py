"""The serving path of this checkout against an earlier revision's, side by side.

Both repositories are served at once, each with a near-zero-cost encoder of its own interface
(this checkout's lookup graph; for a revision before it, an embedding lookup answering
`last_hidden_state`, which that revision's Python pooler then pools), and measured in
alternation with the serving-path mode's perf_analyzer settings. Prints a Markdown table of
texts/s per CPU core and p50, medians over the rounds.

    .venv/bin/python tools/compare_serving_path.py --base REV [--rounds 2]

The revision's files come from `git archive` into a scratch folder; its server runs with that
folder first on PYTHONPATH, so its model.py files import its own python_backend.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_FILE = Path("model_repository/tokenizer/1/tokenizer.json")
LEVELS = {1: (1, 16), 64: (1, 4)}

# Run in a subprocess with the revision's sources first on sys.path.
BASE_SERVER = r"""
import sys
from pathlib import Path
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from inference_tools.local_server import LocalTritonServer
from inference_tools.model_config import read_model_config

repository, work = Path(sys.argv[1]), Path(sys.argv[2])
try:
    from lab.perf.serving_path import lookup_repository
    repository = lookup_repository(repository, work / "lookup-repository")
except ImportError:  # a revision before the serving-path mode: per-token states out
    output = read_model_config(repository / "minilm" / "config.pbtxt").output[0]
    hidden = int(output.dims[-1])
    table = np.random.default_rng(0).standard_normal((30522, hidden)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], [output.name], axis=0),
            helper.make_node("Identity", ["attention_mask"], ["mask_unused"]),
        ],
        "lookup",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
            for name in ("input_ids", "attention_mask")
        ],
        [
            helper.make_tensor_value_info(
                output.name, TensorProto.FLOAT, ["batch", "sequence", hidden]
            )
        ],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (repository / "minilm" / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(repository / "minilm" / "1" / "model.onnx"))
server = LocalTritonServer(repository.resolve(), work_dir=work / "runtime")
server.start()
print(server.http_url, server.grpc_url, flush=True)
sys.stdin.read()
server.stop()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration-ms", type=int, default=2000)
    args = parser.parse_args()

    from inference_tools.local_server import LocalTritonServer
    from inference_tools.paths import MODEL_REPOSITORY
    from lab.perf import serving_path
    from pod_hooks.fit_instances import available_cpus

    scratch = Path(tempfile.mkdtemp(prefix="compare-serving-path-"))
    base = scratch / "base"
    base.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.base], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    shutil.copy2(ROOT / TOKENIZER_FILE, base / TOKENIZER_FILE)
    base_repository = scratch / "base-repository"
    shutil.copytree(base / "model_repository", base_repository)
    # The base's packages wherever its layout kept them: serving/ and the top level, or scripts/.
    paths = [base / "serving", base / "scripts", base]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(path) for path in paths))
    base_server = subprocess.Popen(
        [sys.executable, "-c", BASE_SERVER, str(base_repository), str(scratch)],
        cwd=base,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert base_server.stdout is not None and base_server.stdin is not None
    base_http, base_grpc = base_server.stdout.readline().split()
    current = LocalTritonServer(
        serving_path.lookup_repository(MODEL_REPOSITORY, scratch / "current-repository")
    )
    current.start()
    systems = {
        "base": {"http": base_http, "grpc": base_grpc},
        "current": {"http": current.http_url, "grpc": current.grpc_url},
    }
    results: dict[tuple[str, str, int, int], list] = {}
    try:
        for round_index in range(args.rounds):
            order = list(systems.items())
            for name, urls in order if round_index % 2 == 0 else reversed(order):
                options = serving_path.ServingPathOptions(
                    out_dir=scratch / f"{name}-{round_index}",
                    model_repository=MODEL_REPOSITORY,
                    concurrency=LEVELS,
                    measurement_interval_ms=args.duration_ms,
                    stability_percentage=1000.0,
                    max_trials=3,
                    repeats=1,  # the rounds, alternating the systems, are the repeats here
                )
                for point in serving_path.measure(options, urls):
                    key = (name, point.protocol, point.texts_per_request, point.concurrency)
                    results.setdefault(key, []).append(point.measurement)
    finally:
        current.stop()
        base_server.stdin.close()
        base_server.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)

    cpus = available_cpus()
    print(f"{cpus:g} CPUs; medians of {args.rounds} rounds; base {args.base}\n")
    print(
        "| protocol | texts per request | concurrency | base texts/s per core "
        "| current | current / base | p50 base → current |"
    )
    print("|---|---|---|---|---|---|---|")
    for _, protocol, texts, concurrency in sorted(k for k in results if k[0] == "current"):
        before = results.get(("base", protocol, texts, concurrency))
        after = results[("current", protocol, texts, concurrency)]
        if not before:
            continue
        base_rate = statistics.median(m.throughput_per_s for m in before) / cpus
        rate = statistics.median(m.throughput_per_s for m in after) / cpus
        base_p50 = statistics.median(m.p(50) for m in before) / 1000
        p50 = statistics.median(m.p(50) for m in after) / 1000
        print(
            f"| {protocol} | {texts} | {concurrency} | {base_rate:.0f} | {rate:.0f} "
            f"| {rate / base_rate:.2f}x | {base_p50:.2f} → {p50:.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
