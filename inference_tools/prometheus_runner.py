"""Run a real Prometheus (Debian's /usr/bin/prometheus) on loopback for tests and the calibration.

The configuration and rule files are written into a fresh working folder next to the TSDB, the
server listens on 127.0.0.1 on a free port, and `stop()` removes nothing but the process: the
folder (with prometheus.log) stays for a post-mortem unless it was a temporary one.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from inference_tools.local_server import free_port, log_tail
from inference_tools.subprocesses import ManagedService, answers, stop_process, wait_until_ready
from inference_tools.system_packages import SystemPackageMissing

LOG = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
DEFAULT_BINARY = "/usr/bin/prometheus"


class PrometheusStartError(RuntimeError):
    pass


def find_prometheus(binary: str | None = None) -> str:
    candidate = binary or shutil.which("prometheus") or DEFAULT_BINARY
    if not Path(candidate).is_file():
        raise SystemPackageMissing(f"Prometheus ({candidate}, Debian's prometheus)")
    return candidate


class LocalPrometheus(ManagedService):
    """A Prometheus process with a given configuration and rule files.

    `config` is the content of prometheus.yml as a mapping; its `rule_files` entry is set from
    `rule_files` (file name -> rule file content), which are written beside it.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        rule_files: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        port: int = 0,
        work_dir: Path | None = None,
        binary: str | None = None,
        retention: str = "2h",
    ) -> None:
        self.config = dict(config)
        self.rule_files = dict(rule_files or {})
        self.port = port or free_port()
        self._temporary = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="prometheus-"))
        self.binary = binary
        self.retention = retention
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "prometheus.log"

    def write_files(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for name, content in self.rule_files.items():
            (self.work_dir / name).write_text(yaml.safe_dump(dict(content), sort_keys=False))
        config = {**self.config, "rule_files": list(self.rule_files)}
        config_path = self.work_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return config_path

    def command(self, config_path: Path) -> list[str]:
        return [
            find_prometheus(self.binary),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.work_dir / 'tsdb'}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--log.level=warn",
        ]

    def start(self, timeout_s: float = 30.0) -> None:
        command = self.command(self.write_files())
        LOG.info("starting %s", " ".join(command))
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                start_new_session=True,
            )
        try:
            self._wait_until_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout_s: float) -> None:
        problem = wait_until_ready(
            lambda: answers(f"{self.url}/-/ready"), self.process, timeout_s, interval_s=0.2
        )
        if problem:
            raise PrometheusStartError(f"prometheus {problem}:\n{log_tail(self.log_path)}")

    def stop(self, timeout_s: float = 15.0) -> None:
        stop_process(self.process, timeout_s)
        if self._temporary:
            shutil.rmtree(self.work_dir, ignore_errors=True)
