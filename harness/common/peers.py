"""Peer servers for side-by-side measurements: ngircd, InspIRCd 3 and Redis 7, started and stopped by PID.

Not a client: this module starts a peer and says where it listens; the load
generator (harness.bench.loadgen) and the swarm speak the peer's protocol.

Theory of operation. Each peer runs in the foreground (ngircd ``--nodaemon``,
InspIRCd ``--nofork``, Redis ``--daemonize no``), so the PID that
:class:`~harness.common.launcher.ServerProcess` holds is the server's own, and
it is stopped by that PID like our server. Its configuration, pid file and logs
are generated into a fresh temp dir, removed when it stops. It listens on
127.0.0.1 and a port that was free a moment before (none of them takes port 0),
and it is ready when that port accepts (:attr:`Readiness.PORT`) *and* the
process itself holds the listening socket: InspIRCd carries on without a
listener when its bind fails, and a connect would then reach whoever took the
port. Either failure of that race is retried once on another port.

The configurations take every flood limit out of reach of a load test
(ngircd's per-client penalty, InspIRCd's fake lag and clone limits) and turn
off what a test does not need (DNS and ident lookups, persistence). The
quirks that cost time to find, each handled below where it applies:

* ngircd never runs as root: started as root, it switches to ``nobody``
  *before* it writes its pid file, so the temp dir is handed to that user.
* InspIRCd refuses to start as root (exit code 8) unless given
  ``--runasroot``, and it exits with code 10 on SIGTERM: a clean stop.
* InspIRCd completes a registration only on its once-a-second timer: allow
  1-2 s for ``001`` (the callers' concern; :data:`PEERS` says so).
* Redis acts on SIGTERM in its periodic task (``hz 10``): it takes about 0.1 s to stop.

A peer whose binary is missing is reported, never failed:
:func:`missing_reason` gives ``not installed (apt-get install ngircd)``, and
:func:`start_peer` raises :class:`PeerNotInstalled` with that text.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import psutil

from harness.common.address import Endpoint
from harness.common.launcher import Readiness, ServerProcess, ServerStartError, free_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Seconds a peer gets to accept: each one starts within 20 ms on an idle machine, Redis up to 0.2 s;
#: a loaded 2-core machine can multiply that.
PEER_START_TIMEOUT = 10.0
#: Seconds between SIGTERM and SIGKILL. Redis needs about 0.1 s (see above); the others a few ms.
PEER_STOP_TIMEOUT = 5.0
#: Starts tried, each on a fresh port: the port is free when chosen, and another process may take it
#: before the peer binds it.
START_ATTEMPTS = 2
#: Redis's limit on a subscriber's unsent output (hard, soft, soft seconds; its default is "32mb 8mb 60").
#: A subscriber that stops reading is closed once this much is pending beyond the kernel's buffers.
REDIS_PUBSUB_LIMIT = "1mb 0 0"

Protocol = Literal["irc", "resp"]


@dataclass(frozen=True)
class PeerSpec:
    """What a caller needs to know about one kind of peer before starting it."""

    name: str
    """As ``--peers`` spells it: ``ngircd``, ``inspircd``, ``redis``."""
    binary: str
    """Absolute path of the server binary (Debian's)."""
    package: str
    """The Debian package that installs it."""
    protocol: Protocol
    """``irc`` (PRIVMSG in a channel; a sender gets no echo) or ``resp`` (Redis PUBLISH/SUBSCRIBE)."""
    clean_exit_codes: tuple[int, ...]
    """Exit codes of a clean stop on SIGTERM."""
    registration_s: float
    """Seconds a client should allow from connect to being able to chat (InspIRCd's 1 s timer)."""
    accept_backlog: int
    """The listen backlog it uses. ngircd's is fixed at 10: a client opening more connections than that
    at once loses SYNs and waits 1 s per retransmission, so it should keep fewer pending."""

    @property
    def install_hint(self) -> str:
        return f"apt-get install {self.package}"


PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec("ngircd", "/usr/sbin/ngircd", "ngircd", "irc", (0,), 1.0, 10),
        # 10 is InspIRCd's EXIT_STATUS_SIGTERM.
        PeerSpec("inspircd", "/usr/sbin/inspircd", "inspircd", "irc", (0, 10), 2.0, 128),
        PeerSpec("redis", "/usr/bin/redis-server", "redis-server", "resp", (0,), 1.0, 511),
    )
}


class PeerNotInstalled(RuntimeError):
    """The peer's binary is missing. The message is the report line: ``not installed (apt-get install X)``."""


def peer_spec(name: str) -> PeerSpec:
    """The spec of peer ``name``; :class:`ValueError` listing the valid names for any other."""
    try:
        return PEERS[name]
    except KeyError:
        raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}") from None


def missing_reason(name: str) -> str | None:
    """``not installed (apt-get install X)`` when peer ``name``'s binary is missing, else None."""
    spec = peer_spec(name)
    if os.access(spec.binary, os.X_OK):
        return None
    return f"not installed ({spec.install_hint})"


def peer_version(name: str) -> str | None:
    """The peer's first line of ``--version`` (for run records), None when it is missing or says nothing."""
    spec = peer_spec(name)
    if missing_reason(name) is not None:
        return None
    try:
        done = subprocess.run(
            [spec.binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s --version: %s", spec.binary, exc)
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


class PeerServer:
    """One running peer: its endpoint, its PID, its log; stopped by PID at the end of a ``with`` block.

    Made by :func:`start_peer`. The temp dir (configuration, pid file, logs)
    is removed on :meth:`stop`; :meth:`log` stays readable afterwards.
    """

    def __init__(self, spec: PeerSpec, process: ServerProcess, tmpdir: Path) -> None:
        self.spec = spec
        self.process = process
        self.tmpdir = tmpdir
        self.returncode: int | None = None
        self._final_log: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def endpoint(self) -> Endpoint:
        return self.process.endpoint

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def is_running(self) -> bool:
        return self.process.is_running

    @property
    def stopped_cleanly(self) -> bool:
        """Whether it has stopped with an exit code that its SIGTERM handling gives."""
        return self.returncode is not None and self.returncode in self.spec.clean_exit_codes

    def stop(self, timeout: float = PEER_STOP_TIMEOUT) -> int:
        """SIGTERM to its PID, SIGKILL after ``timeout``; remove the temp dir. Returns the exit code.

        Idempotent: a second call returns the same code.
        """
        if self.returncode is not None:
            return self.returncode
        self.returncode = self.process.stop(signal.SIGTERM, timeout)
        self._final_log = self.log()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if not self.stopped_cleanly:
            log.warning("%s (pid %d) stopped with exit code %d", self.name, self.pid, self.returncode)
        return self.returncode

    def log(self) -> str:
        """What it wrote: its stdout and stderr, then InspIRCd's own log file."""
        if self._final_log is not None:
            return self._final_log
        parts = [self.process.log()]
        try:
            parts.append((self.tmpdir / "ircd.log").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            pass  # only InspIRCd writes a log file of its own
        return "".join(parts)

    def __enter__(self) -> PeerServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PeerServer({self.name}, {self.endpoint}, pid {self.process.proc and self.pid})"


def start_peer(name: str, *, timeout: float = PEER_START_TIMEOUT) -> PeerServer:
    """Start peer ``name`` on 127.0.0.1 and a free port; ready (accepting, on its own socket) when it returns.

    Raises :class:`PeerNotInstalled` when its binary is missing, and
    :class:`~harness.common.launcher.ServerStartError` (with the last line it
    logged) when it does not start on two ports in a row.
    """
    spec = peer_spec(name)
    reason = missing_reason(name)
    if reason is not None:
        raise PeerNotInstalled(reason)
    error: ServerStartError | None = None
    for attempt in range(1, START_ATTEMPTS + 1):
        tmpdir = Path(tempfile.mkdtemp(prefix=f"peer-{name}-"))
        port = free_port(HOST)
        process = ServerProcess(
            _command(spec, tmpdir, port),
            readiness=Readiness.PORT,
            endpoint=Endpoint(HOST, port),
            log_path=tmpdir / "stdout.log",
            cwd=str(tmpdir),
            # A Ctrl+C meant for the harness does not reach the peer: the harness stops it by PID.
            new_session=True,
        )
        try:
            process.start(timeout)
            if _listens_on(process.pid, port):
                return PeerServer(spec, process, tmpdir)
            process.stop(signal.SIGTERM, PEER_STOP_TIMEOUT)
            error = ServerStartError(f"{name} did not start: port {port} was taken by another process")
        except ServerStartError as exc:
            error = exc
        shutil.rmtree(tmpdir, ignore_errors=True)
        log.info("%s: start %d of %d failed: %s", name, attempt, START_ATTEMPTS, error)
    assert error is not None
    raise error


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket on ``port``."""
    try:
        proc = psutil.Process(pid)
        # psutil 6 renamed connections() to net_connections()
        conns = proc.net_connections("tcp") if hasattr(proc, "net_connections") else proc.connections("tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def _command(spec: PeerSpec, tmpdir: Path, port: int) -> list[str]:
    """Write the peer's configuration into ``tmpdir``; return its foreground command line."""
    if spec.name == "ngircd":
        return _ngircd_command(spec, tmpdir, port)
    if spec.name == "inspircd":
        return _inspircd_command(spec, tmpdir, port)
    return _redis_command(spec, tmpdir, port)


def _ngircd_command(spec: PeerSpec, tmpdir: Path, port: int) -> list[str]:
    conf = tmpdir / "ngircd.conf"
    # Without its own (empty) include dir it also reads /etc/ngircd/ngircd.conf.d/*.conf.
    incdir = tmpdir / "conf.d"
    incdir.mkdir()
    run_as = ""
    if os.geteuid() == 0:
        # It switches to ServerUID ("nobody" when unset) before it writes its pid file.
        nobody = pwd.getpwnam("nobody")
        os.chown(tmpdir, nobody.pw_uid, nobody.pw_gid)
        run_as = f"\tServerUID = {nobody.pw_uid}\n\tServerGID = {nobody.pw_gid}\n"
    conf.write_text(NGIRCD_CONF.format(port=port, tmp=tmpdir, incdir=incdir, run_as=run_as))
    return [spec.binary, "--nodaemon", "--config", str(conf)]


def _inspircd_command(spec: PeerSpec, tmpdir: Path, port: int) -> list[str]:
    conf = tmpdir / "inspircd.conf"
    conf.write_text(INSPIRCD_CONF.format(port=port, tmp=tmpdir))
    (tmpdir / "motd.txt").write_text("load test\n")
    argv = [spec.binary, "--config", str(conf), "--nofork"]
    if os.geteuid() == 0:
        argv.append("--runasroot")
    return argv


def _redis_command(spec: PeerSpec, tmpdir: Path, port: int) -> list[str]:
    return [
        spec.binary,
        "--port",
        str(port),
        "--bind",
        HOST,
        # no RDB snapshots and no append-only file: nothing is written, not even at shutdown
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(tmpdir),
        "--pidfile",
        str(tmpdir / "redis.pid"),
        # no --logfile: the log goes to stdout, which the launcher writes to its log file
        "--client-output-buffer-limit",
        f"pubsub {REDIS_PUBSUB_LIMIT}",
    ]


#: ngircd 26. Every limit that a load test would hit is lifted (0 = unlimited).
NGIRCD_CONF = """\
# ngircd load-test configuration, generated by harness.common.peers
[Global]
\tName = irc.peer.test
\tInfo = chat-harness load-test peer
\tAdminInfo1 = load test
\tAdminInfo2 = 127.0.0.1
\tAdminEMail = nobody@example.invalid
\tListen = 127.0.0.1
\tPorts = {port}
\tPidFile = {tmp}/ngircd.pid
\tMotdPhrase = load test
{run_as}
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\t# announced as NICKLEN (default 9, at most 31)
\tMaxNickLength = 30
\t# no per-client penalty ("fake lag"): by default a client gets about 3 commands a second
\tMaxPenaltyTime = 0
\tPingTimeout = 120
\tPongTimeout = 20

[Options]
\tDNS = no
\tIdent = no
\tPAM = no
\tIncludeDir = {incdir}
"""

#: InspIRCd 3. Comments are '#' lines: ``<!-- -->`` is a syntax error in this format.
INSPIRCD_CONF = """\
<config format="xml">
# InspIRCd load-test configuration, generated by harness.common.peers
<server name="irc.peer.test" description="chat-harness load-test peer" network="LoadTest">
<admin name="load test" nick="admin" email="nobody@example.invalid">
<bind address="127.0.0.1" port="{port}" type="clients">

# One class for everyone. Each command adds (its penalty x 1000) to a counter, commandrate is taken
# off it once a second, and at threshold x 1000 the client would be fake-lagged or killed: out of reach.
<connect name="main" allow="*" timeout="20" pingfreq="120" maxchans="100"
         threshold="1000000" commandrate="100000000" fakelag="no"
         softsendq="1048576" hardsendq="1048576" recvq="131072"
         localmax="100000" globalmax="100000" limit="100000" maxconnwarn="no"
         resolvehostnames="no" useident="no">

<files motd="{tmp}/motd.txt">
<pid file="{tmp}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{tmp}/ircd.log">
# no lookups are made; this only stops it reading /etc/resolv.conf
<dns server="127.0.0.1" timeout="1">
<options casemapping="rfc1459">
# bytes per socket read, at most 65534 (65536 silently falls back to 10240, and bursts then stall)
<performance somaxconn="128" softlimit="100000" clonesonconnect="no" netbuffersize="65534">
<limits maxnick="30">

<module name="cap">
<module name="ircv3_echomessage">
<module name="ircv3_servertime">
<module name="ircv3_ctctags">
"""
