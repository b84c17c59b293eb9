"""A private PostgreSQL cluster for tests (issue 17): `scripts/pg-test-cluster` under a
temporary directory, on a free loopback port, stopped at the end.

    with PgCluster(tmp_path / "pg") as pg:
        pg.url                  # postgres://letterbox@127.0.0.1:PORT/letterbox
        pg.psql("SELECT 1")     # runs SQL with Debian's psql, returns its output
        pg.new_database("t1")   # another empty database's URL

Cargo tests find a cluster by the environment variable LETTERBOX_TEST_POSTGRES (a URL),
e.g. `LETTERBOX_TEST_POSTGRES=$(scripts/pg-test-cluster start DIR) cargo test -p letterbox-store`.
"""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "pg-test-cluster"


def available() -> bool:
    """Whether Debian's PostgreSQL server binaries are installed."""
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


class PgCluster:
    def __init__(self, dir: Path):
        self.dir = Path(dir)
        self.url = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([str(SCRIPT), "start", str(self.dir)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"pg-test-cluster start failed: {r.stderr}")
        self.url = r.stdout.strip()
        return self

    def stop(self):
        subprocess.run([str(SCRIPT), "stop", str(self.dir)], capture_output=True, timeout=120)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql: str, url: str = None) -> str:
        r = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url or self.url, "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def new_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name
