"""One phone's FTP session: the commands it may send and what each one does.

Every request is relayed to the cloud's provisioning service as the registered
relay (architecture.md, data flow 1; relay.frontend.upstream), as the phone:
its address, the transport ("ftp", or "ftps" once AUTH TLS succeeded) and its
login as HTTP basic. The relay serves no tree of its own and stores nothing:

- USER/PASS is a HEAD of `/000000000000.cfg` with those credentials: 200 logs
  the phone in, 401/403 is 530 (the cloud audits and throttles it; 429 is 421),
  an unreachable cloud is `421 Service not available, try again later`.
  Anonymous is only a login the cloud refuses. The session keeps the
  credentials in memory and nothing else.
- RETR of a firmware image the download agent published (ImageDirectory) is
  sent from the file (sendfile(2) on plain FTP); anything else is streamed
  from the cloud (relay.frontend.ftp_cloud), never written to disk. REST
  before RETR resumes (a seek, or a Range request to the cloud).
- SIZE and MDTM answer from the file or from the cloud's HEAD (a log's SIZE is
  the day's length the cloud reports, which phones read before appending).
- STOR and APPE write only what classify calls an "upload" (logs, override
  files), capped like the cloud caps them, and forward the body as a PUT when
  the data connection completes; the reply (226, or the cloud's refusal)
  comes after the cloud answered. Logs are appended by the cloud on every PUT.
- Names are screened by relay.frontend.ftp_rules (relay.proto.polycom.paths);
  a refused name, any other write (DELE, RNFR/RNTO, MKD, RMD, STOU, MFMT,
  SITE) is answered 550 and audited: a WARNING line with the phone's address.
- LIST, NLST and STAT of a path answer 550: phones ask for files by name and
  a listing would reveal other phones' names. MLSD/MLST are not offered.
- TYPE A and TYPE I send the same bytes (as vsftpd does by default): the files
  are served exactly as the cloud holds them.
- The cloud unreachable: a login is 421 and the connection closes, a read 451,
  a transfer it breaks off 426; phones retry on all three (RFC 959 4yz).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from dataclasses import dataclass, replace
from typing import Any

# First: it imports asyncore and asynchat (deprecated in 3.11) with their warning
# silenced; pyftpdlib.handlers would import them unguarded.
import pyftpdlib.ioloop  # noqa: F401
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.handlers.ftp.producers import FileProducer

from relay.frontend.firmware import PublishedImages
from relay.frontend.ftp_cloud import CloudBridge, CloudDownload, Head
from relay.frontend.ftp_data import DataChannel, UploadBuffer, session_log
from relay.frontend.ftp_rules import (
    ROOT,
    Target,
    WriteRefused,
    change_directory,
    failure_reply,
    ftp_time,
    modification_time,
    resolve,
    upload,
)
from relay.frontend.ftp_tls import TlsChannel
from relay.frontend.upstream import Phone, UpstreamUnavailable
from relay.logs import event
from relay.proto.polycom.paths import PathRejected

log = logging.getLogger("relay.ftp")

LOGIN_PATH = "/000000000000.cfg"
UNAVAILABLE = "421 Service not available, try again later."
RETRY_LATER = "451 The provisioning service is not available; try again later."
NO_LISTING = "550 Listings are not offered; ask for a file by name."
WRITE_REFUSED = "550 Permission denied: phones write only their logs and override files."

_DROPPED = frozenset({"MLSD", "MLST", "SITE CHMOD", "SITE HELP"})
_TLS_COMMANDS = {
    "AUTH": {"perm": None, "auth": False, "arg": True, "help": "Syntax: AUTH <SP> TLS."},
    "PBSZ": {"perm": None, "auth": False, "arg": True, "help": "Syntax: PBSZ <SP> 0."},
    "PROT": {"perm": None, "auth": False, "arg": True, "help": "Syntax: PROT <SP> C|P."},
}
# No pyftpdlib file-system checks (there is no file system): every command gets its
# argument as sent, and the handlers below decide.
PLAIN_COMMANDS = {
    name: {**spec, "perm": None}
    for name, spec in FTPHandler.proto_cmds.items()
    if name not in _DROPPED
}
TLS_COMMANDS = {**PLAIN_COMMANDS, **_TLS_COMMANDS}


@dataclass(frozen=True, slots=True)
class Settings:
    """What every session of one listener shares."""

    bridge: CloudBridge
    images: PublishedImages
    tls: ssl.SSLContext | None
    passive_ports: range | None


@dataclass(frozen=True, slots=True)
class _Transfer:
    command: str
    path: str
    origin: str


class Session(TlsChannel, FTPHandler):  # type: ignore[misc]
    """One phone's control connection."""

    authenticated: bool
    _restart_position: int
    dtp_handler = DataChannel
    banner = "Provisioning relay ready."
    # The cloud throttles failed logins per phone address; this only slows one session.
    auth_failed_timeout = 1

    def __init__(self, conn: socket.socket, server: Any, ioloop: Any | None = None) -> None:
        self.settings: Settings = server.settings
        self.passive_ports = self.settings.passive_ports
        self.proto_cmds = PLAIN_COMMANDS if self.settings.tls is None else TLS_COMMANDS
        self.protected = False
        self._pbsz = False
        self._phone: Phone | None = None
        self._cwd = ROOT
        self._transfer: _Transfer | None = None
        super().__init__(conn, server, ioloop)
        if not self._closed:
            server.track(self)

    # -- session --------------------------------------------------------------

    def handle(self) -> None:
        self.server.busy = False
        super().handle()

    def handle_max_cons(self) -> None:
        if not self.server.busy:
            self.server.busy = True
            event(
                log,
                "ftp_busy",
                logging.WARNING,
                max_connections=self.server.max_cons,
                effect="phones are answered 421 and retry",
            )
        super().handle_max_cons()

    def handle_timeout(self) -> None:
        if self._tls_handshaking:
            self.close()
        else:
            super().handle_timeout()

    def close(self) -> None:
        self.server.untrack(self)
        super().close()

    def hang_up(self) -> None:
        """Shut the connection down from another thread, to wake its own (stop)."""
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self._fileno)) as twin:
            twin.shutdown(socket.SHUT_RDWR)

    def flush_account(self) -> None:
        super().flush_account()
        self._phone = None
        self._cwd = ROOT
        self._pbsz = False
        self.protected = False

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        if cmd == "SITE" and self.authenticated:
            self._refuse_write("SITE", arg, "SITE commands are not offered")
            return
        super().pre_process_command(line, cmd, arg)

    def log(self, msg: str, logfun: Any = None) -> None:
        session_log.debug("%s:%s %s", self.remote_ip, self.remote_port, msg)

    def logline(self, msg: str, logfun: Any = None) -> None:
        session_log.debug("%s:%s %s", self.remote_ip, self.remote_port, msg)

    def log_exception(self, instance: Any) -> None:
        log.error(
            "ftp_internal_error",
            exc_info=True,
            extra={"fields": {"source": self.remote_ip, "channel": type(instance).__name__}},
        )

    def log_transfer(
        self,
        cmd: str,
        filename: str,
        receive: bool,
        completed: bool,
        elapsed: float,
        bytes: int,
    ) -> None:
        transfer = self._transfer
        self._transfer = None
        event(
            log,
            "ftp_transfer",
            source=self.remote_ip,
            command=cmd,
            path=transfer.path if transfer else filename,
            origin=transfer.origin if transfer else None,
            bytes=bytes,
            ms=round(elapsed * 1000, 1),
            completed=completed,
        )

    # -- login ----------------------------------------------------------------

    def ftp_PASS(self, line: str) -> None:
        if self.authenticated:
            self.respond("503 User already authenticated.")
            return
        if not self.username:
            self.respond("503 Login with USER first.")
            return
        phone = Phone.with_login(self.remote_ip, self._transport(), self.username, line)
        try:
            answer = self.settings.bridge.head(LOGIN_PATH, phone)
        except UpstreamUnavailable:
            self._unavailable("PASS")
            return
        if answer.status == 200:
            self._phone = phone
            self.authenticated = True
            self.attempted_logins = 0
            self.respond("230 Login successful.")
            event(log, "ftp_login", source=self.remote_ip, user=self.username, tls=self.tls_open)
            return
        event(
            log,
            "ftp_login_failed",
            logging.WARNING,
            source=self.remote_ip,
            user=self.username[:64],
            status=answer.status,
        )
        if answer.status in (401, 403):
            self.handle_auth_failed("", "")
        elif answer.status == 429:
            self.respond("421 Too many failed logins from this address; try again later.")
            self.close_when_done()
        else:
            self._unavailable("PASS")

    # -- TLS (RFC 4217) -------------------------------------------------------

    def ftp_AUTH(self, line: str) -> None:
        mechanism = line.upper()
        if self._tls_requested:
            self.respond("503 Already using TLS.")
        elif mechanism not in ("TLS", "TLS-C", "SSL", "TLS-P"):
            self.respond("504 AUTH type not supported; use AUTH TLS.")
        else:
            self.respond(f"234 AUTH {mechanism} successful.")
            assert self.settings.tls is not None
            self.start_tls(self.settings.tls)

    def tls_failed(self, error: Exception) -> None:
        # A phone whose TLS is older than the relay's policy (TLS 1.2+) ends here.
        event(
            log,
            "ftps_handshake_failed",
            logging.WARNING,
            source=self.remote_ip,
            connection="control",
            error=str(error)[:200],
        )
        self.close()

    def ftp_PBSZ(self, line: str) -> None:
        if not self.tls_open:
            self.respond("503 PBSZ not allowed on an insecure control connection.")
        else:
            self._pbsz = True
            self.respond("200 PBSZ=0 successful.")

    def ftp_PROT(self, line: str) -> None:
        level = line.upper()
        if not self.tls_open:
            self.respond("503 PROT not allowed on an insecure control connection.")
        elif not self._pbsz:
            self.respond("503 You must issue the PBSZ command prior to PROT.")
        elif level in ("C", "P"):
            self.protected = level == "P"
            self.respond(f"200 Protection set to {'Private' if self.protected else 'Clear'}.")
        elif level in ("S", "E"):
            self.respond(f"521 PROT {level} unsupported (use C or P).")
        else:
            self.respond("504 Unrecognized PROT type (use C or P).")

    def ftp_FEAT(self, line: str) -> None:
        features = ["EPRT", "EPSV", "MDTM", "REST STREAM", "SIZE", "TVFS", "UTF8"]
        if self.settings.tls is not None:
            features += ["AUTH TLS", "PBSZ", "PROT"]
        self.push("211-Features supported:\r\n")
        self.push("".join(f" {feature}\r\n" for feature in sorted(features)))
        self.respond("211 End FEAT.")

    # -- names ------------------------------------------------------------------

    def ftp_PWD(self, line: str) -> None:
        self.respond(f'257 "{self._cwd}" is the current directory.')

    def ftp_CWD(self, path: str) -> None:
        try:
            self._cwd = change_directory(self._cwd, path or ROOT)
        except PathRejected as exc:
            self._refuse_name("CWD", path, exc)
            return
        self.respond(f'250 "{self._cwd}" is the current directory.')

    def ftp_CDUP(self, path: str) -> None:
        self._cwd = ROOT
        self.respond(f'250 "{ROOT}" is the current directory.')

    def ftp_LIST(self, path: str) -> None:
        self._no_listing("LIST", path)

    def ftp_NLST(self, path: str) -> None:
        self._no_listing("NLST", path)

    def ftp_STAT(self, path: str) -> None:
        if path:
            self._no_listing("STAT", path)
        else:
            super().ftp_STAT(path)

    # -- reads ------------------------------------------------------------------

    def ftp_RETR(self, argument: str) -> None:
        start = self._restart_position
        self._restart_position = 0
        target = self._target("RETR", argument)
        if target is None:
            return
        local = self.settings.images.open(target.path)
        if local is not None:
            self._send_file(target, local[0], start)
        else:
            self._send_relayed(target, start)

    def ftp_SIZE(self, argument: str) -> None:
        target = self._target("SIZE", argument)
        if target is None:
            return
        local = self._local_stat(target)
        if local is not None:
            self.respond(f"213 {local.st_size}")
            return
        answer = self._head("SIZE", target)
        if answer is not None:
            if answer.length is None:
                self.respond("550 The size of this file is not known.")
            else:
                self.respond(f"213 {answer.length}")

    def ftp_MDTM(self, argument: str) -> None:
        target = self._target("MDTM", argument)
        if target is None:
            return
        local = self._local_stat(target)
        if local is not None:
            self.respond(f"213 {ftp_time(local.st_mtime)}")
            return
        answer = self._head("MDTM", target)
        if answer is not None:
            modified = modification_time(answer.modified) if answer.modified else None
            if modified is None:
                self.respond("550 The modification time of this file is not known.")
            else:
                self.respond(f"213 {modified}")

    # -- writes -----------------------------------------------------------------

    def ftp_STOR(self, argument: str, mode: str = "w") -> None:
        command = "APPE" if mode == "a" else "STOR"
        if self._restart_position:
            self._restart_position = 0
            self.respond("554 Uploads cannot be resumed; send the whole file.")
            return
        target = self._target(command, argument)
        if target is None:
            return
        try:
            allowed = upload(target.names, append=command == "APPE")
        except WriteRefused as exc:
            self._refuse_write(command, target.path, exc.reason)
            return
        body = UploadBuffer(target.path, allowed.limit)
        self._transfer = _Transfer(command, target.path, "cloud")
        if self.data_channel is not None:
            self.respond("125 Data connection already open. Transfer starting.")
            self.data_channel.file_obj = body
            self.data_channel.enable_receiving("i", command)
        else:
            self.respond("150 File status okay. About to open data connection.")
            self._in_dtp_queue = (body, command)

    def ftp_APPE(self, argument: str) -> None:
        self.ftp_STOR(argument, mode="a")

    def forward(self, body: UploadBuffer) -> str:
        """PUT a received upload to the cloud; the reply the phone gets for its STOR."""
        try:
            status = self.settings.bridge.put(body.name, self._as_phone(), body.getvalue())
        except UpstreamUnavailable:
            return RETRY_LATER
        stored = status in (200, 201, 204)
        level = logging.INFO if stored else logging.WARNING
        event(log, "ftp_upload", level, source=self.remote_ip, path=body.name, status=status)
        return "226 Transfer complete." if stored else failure_reply(status)

    def ftp_DELE(self, path: str) -> None:
        self._refuse_write("DELE", path)

    def ftp_RNFR(self, path: str) -> None:
        self._refuse_write("RNFR", path)

    def ftp_RNTO(self, path: str) -> None:
        self._refuse_write("RNTO", path)

    def ftp_MKD(self, path: str) -> None:
        self._refuse_write("MKD", path)

    def ftp_RMD(self, path: str) -> None:
        self._refuse_write("RMD", path)

    def ftp_STOU(self, line: str) -> None:
        self._refuse_write("STOU", line)

    def ftp_MFMT(self, line: str) -> None:
        self._refuse_write("MFMT", line)

    # -- helpers ------------------------------------------------------------------

    def _transport(self) -> str:
        return "ftps" if self.tls_open else "ftp"

    def _as_phone(self) -> Phone:
        assert self._phone is not None
        return replace(self._phone, transport=self._transport())

    def _target(self, command: str, argument: str) -> Target | None:
        try:
            return resolve(self._cwd, argument)
        except PathRejected as exc:
            self._refuse_name(command, argument, exc)
            return None

    def _local_stat(self, target: Target) -> os.stat_result | None:
        """The published image's metadata, if the relay has it (else the cloud answers)."""
        local = self.settings.images.find(target.path)
        if local is None:
            return None
        try:
            return local.path.stat()
        except OSError:
            return None

    def _head(self, command: str, target: Target) -> Head | None:
        try:
            answer = self.settings.bridge.head(target.path, self._as_phone())
        except UpstreamUnavailable:
            self._unavailable(command)
            return None
        if answer.status != 200:
            self.respond(failure_reply(answer.status))
            return None
        return answer

    def _send_file(self, target: Target, fd: int, start: int) -> None:
        """Send a published image; the descriptor holds its shared lock until closed."""
        file = os.fdopen(fd, "rb")
        size = os.fstat(file.fileno()).st_size
        if start > size:
            file.close()
            self.respond(f"554 Restart position {start} is past the end ({size} bytes).")
            return
        file.seek(start)
        self._transfer = _Transfer("RETR", target.path, "local")
        self.push_dtp_data(FileProducer(file, "i"), isproducer=True, file=file, cmd="RETR")

    def _send_relayed(self, target: Target, start: int) -> None:
        headers = {"Range": f"bytes={start}-"} if start else None
        try:
            download = self.settings.bridge.download(target.path, self._as_phone(), headers)
        except UpstreamUnavailable:
            self._unavailable("RETR")
            return
        expected = 206 if start else 200
        if download.status != expected:
            download.close()
            if download.status == 200:
                self.respond("554 This file cannot be resumed; fetch it whole.")
            else:
                self._not_served(target, download)
            return
        self._transfer = _Transfer("RETR", target.path, "cloud")
        self.push_dtp_data(download, isproducer=True, file=download, cmd="RETR")

    def _not_served(self, target: Target, download: CloudDownload) -> None:
        # A 404 for an optional file is normal (phones.md section 2): not an error.
        level = logging.DEBUG if download.status == 404 else logging.INFO
        event(
            log,
            "ftp_not_served",
            level,
            source=self.remote_ip,
            path=target.path,
            status=download.status,
        )
        self.respond(failure_reply(download.status))

    def _unavailable(self, command: str) -> None:
        """The cloud is unreachable (Upstream logs that once): a reply phones retry on."""
        if command == "PASS":
            self.respond(UNAVAILABLE)
            self.close_when_done()
        else:
            self.respond(RETRY_LATER)

    def _no_listing(self, command: str, path: str) -> None:
        event(
            log,
            "ftp_refused",
            source=self.remote_ip,
            command=command,
            path=path[:200],
            reason="listings are not offered",
        )
        self.respond(NO_LISTING)

    def _refuse_name(self, command: str, argument: str, error: PathRejected) -> None:
        event(
            log,
            "ftp_refused",
            logging.WARNING,
            source=self.remote_ip,
            command=command,
            path=argument[:200],
            reason=error.message,
            audit=True,
        )
        self.respond(f"550 Not a provisioning file: {error.message}.")

    def _refuse_write(
        self, command: str, argument: str, reason: str = "phones may not change files"
    ) -> None:
        event(
            log,
            "ftp_refused",
            logging.WARNING,
            source=self.remote_ip,
            command=command,
            path=argument[:200],
            reason=reason,
            audit=True,
        )
        self.respond(WRITE_REFUSED)
