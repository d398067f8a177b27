"""Child server processes: spawn, wait until ready, stop without orphans."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOG_TAIL_LINES = 40
DEFAULT_START_TIMEOUT = 60.0

_PR_SET_PDEATHSIG = 1
# Resolved once here: the child must do as little as possible between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


class ServerError(RuntimeError):
    """A server could not be started, or died while starting."""


class ServerUnavailable(ServerError):
    """A server cannot be had on this machine (a binary or tool is missing)."""


@dataclass
class Server:
    """A running child process that serves on ``host:port``.

    The child leads its own process group and receives a signal when the
    thread that started it exits, so a killed parent takes its servers down.
    """

    name: str
    process: subprocess.Popen
    host: str
    port: int
    data_dir: Path
    log_path: Path
    stop_signal: int = field(default=signal.SIGTERM, repr=False)
    _relaunch: Callable[[], Server] | None = field(default=None, repr=False, compare=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """True while the child has not exited (does not reap it)."""
        return self.process.returncode is None and not _has_exited(self.process.pid)

    def stop(self, timeout: float = 15) -> None:
        """Ask the child to stop, wait up to ``timeout``, then SIGKILL it and
        everything it started.

        Idempotent. Always reaps the child; nothing it started outlives it.
        """
        if self.process.returncode is not None:
            return
        if not _has_exited(self.process.pid):
            _signal_pid(self.process.pid, self.stop_signal)
            if not _wait_exited(self.process.pid, timeout):
                _kill_tree(self.process.pid)
                _wait_exited(self.process.pid, timeout)
        # The leader is a zombie now, so its pid (= the group id) cannot have
        # been reused: kill any stragglers of the group, then reap.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL the child and everything it started, as a crash would; reaps
        the child and returns once all of them are gone."""
        if self.process.returncode is not None:
            return
        _kill_tree(self.process.pid)
        self.process.wait()

    def restart(self, timeout: float = 15) -> Server:
        """Stop (if running) and start again on the same port and data dir.

        Updates this object in place (fixtures holding it stay valid) and
        returns it. Data survives where the server keeps it on disk.
        """
        if self._relaunch is None:
            raise ServerError(f"{self.name}: this server cannot be restarted")
        self.stop(timeout)
        fresh = self._relaunch()
        self.process = fresh.process
        return self

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class HttpServer(Server):
    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


_handed_out: set[tuple[str, int]] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now and was not handed out before
    by this process (so two servers started back to back never collide)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _handed_out_lock:
        for _ in range(100):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
            if (host, port) not in _handed_out:
                _handed_out.add((host, port))
                return port
    raise ServerError(f"no free TCP port on {host}")


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except OSError as exc:
        return f"(no log: {exc})"


def _child_setup(death_signal: int, uid: int | None, gid: int | None) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:  # runs in the child between fork and exec
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # After the uid change: Linux clears the death signal on credential changes.
        if _prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            os._exit(70)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(71)

    return setup


def spawn(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    death_signal: int = signal.SIGTERM,
    uid: int | None = None,
    gid: int | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log_path``.

    The child gets ``death_signal`` when the thread that spawned it exits:
    call this from a long-lived thread (normally the main thread).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}: "
                  f"{' '.join(map(str, argv))}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_child_setup(death_signal, uid, gid),
                close_fds=True,
            )
        except FileNotFoundError as exc:
            raise ServerUnavailable(f"{name}: cannot execute {argv[0]}: {exc}") from exc


def run_tool(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    uid: int | None = None,
    gid: int | None = None,
) -> None:
    """Run a short-lived helper (initdb, a storage formatter, mvn) to completion,
    logging to ``log_path``; raise ``ServerError`` with the log tail if it fails."""
    proc = spawn(name, argv, log_path, env=env, cwd=cwd, uid=uid, gid=gid,
                 death_signal=signal.SIGKILL)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise ServerError(f"{name} did not finish within {timeout:.0f}s; "
                          f"last lines of {log_path}:\n{log_tail(log_path)}") from None
    if code != 0:
        raise ServerError(f"{name} failed with exit code {code}; "
                          f"last lines of {log_path}:\n{log_tail(log_path)}")


def wait_ready(
    server: Server,
    probe: Callable[[], bool],
    *,
    timeout: float = DEFAULT_START_TIMEOUT,
    interval: float = 0.1,
) -> Server:
    """Poll ``probe`` until it returns True; return ``server``.

    If the child exits or the deadline passes, stop it and raise ``ServerError``
    naming the server and carrying the last lines of its log.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        if not server.alive():
            code = server.process.wait()
            raise ServerError(
                f"{server.name} exited with code {code} while starting; "
                f"last lines of {server.log_path}:\n{server.log_tail()}")
        try:
            if probe():
                return server
        except Exception as exc:  # a probe failing is the normal not-ready-yet case
            last_error = exc
        if time.monotonic() >= deadline:
            server.stop(timeout=5)
            raise ServerError(
                f"{server.name} was not ready on {server.host}:{server.port} within "
                f"{timeout:.0f}s (last probe error: {last_error!r}); "
                f"last lines of {server.log_path}:\n{server.log_tail()}")
        time.sleep(interval)


def _has_exited(pid: int) -> bool:
    """True if the child has exited; leaves it unreaped (a zombie holds its pid)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _wait_exited(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _has_exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from /proc (children may have left
    the process group: Postgres backends call setsid)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")


def _kill_tree(pid: int, timeout: float = 10) -> None:
    """SIGKILL ``pid``, its process group and all its descendants, and wait
    until the descendants are gone (the caller reaps ``pid`` itself)."""
    descendants = _descendants(pid)
    _signal_group(pid, signal.SIGKILL)
    for child in descendants:
        _signal_pid(child, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while not all(_gone(child) for child in descendants) and time.monotonic() < deadline:
        time.sleep(0.01)


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
