"""A real PostgreSQL 15 server for tests (Debian's `postgresql` package), never run as root.

`PostgresServer()` runs initdb and pg_ctl as the `postgres` user (`runuser -u postgres --` when the tests
run as root), with its data directory in a fresh folder owned by that user, on a free port of 127.0.0.1,
trust authentication for local connections only. `conninfo(dbname)` creates the database on first use.
`make test` / `.ci/run` install the package when it is missing.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("SLM_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return (PG_BIN / "pg_ctl").exists() and (PG_BIN / "initdb").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="slm-pg-"))
        self.data = self.dir / "data"
        user = pwd.getpwnam("postgres")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, user.pw_uid, user.pw_gid) if os.geteuid() == 0 else None
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as_postgres, *cmd], capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> "PostgresServer":
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", opts,
                  "-w", "-t", "60", "start")
        return self

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        return self._run(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                         "-d", dbname, "-At", "-c", sql).stdout

    def conninfo(self, dbname: str) -> str:
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'").strip()
        if not exists:
            self.psql(f'CREATE DATABASE "{dbname}"')
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user=postgres"

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
