"""The data connection of an FTP session, and the upload body it fills.

A DataChannel is pyftpdlib's DTPHandler with the relay's rules: TLS after
`PROT P` (RFC 4217, relay.frontend.ftp_tls); sendfile(2) for a local firmware
file on a plain connection; the bytes of a file sent and stored unchanged in
either TYPE; an upload kept in memory up to the cloud's limit for that name
(552 past it, RFC 959 section 4.2) and forwarded to the cloud before the
phone's 226, so that a refusal by the cloud reaches the phone.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

# First: it imports asyncore and asynchat (deprecated in 3.11) with their warning
# silenced; pyftpdlib.handlers would import them unguarded.
import pyftpdlib.ioloop  # noqa: F401
from pyftpdlib.handlers import DTPHandler

from relay.frontend.ftp_tls import TlsChannel
from relay.frontend.upstream import UpstreamUnavailable
from relay.logs import event

log = logging.getLogger("relay.ftp")
# pyftpdlib's own per-command chatter, kept at DEBUG.
session_log = logging.getLogger("relay.ftp.session")

# Bytes per sendfile(2) or send() call of a data connection (pyftpdlib sends 64 KiB).
SEND_BYTES = 1024 * 1024


class UploadTooLarge(Exception):
    """A STOR/APPE body passed the cloud's limit for that file."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit


class UploadBuffer:
    """The body of one STOR or APPE, in memory up to its limit (nothing touches disk)."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self.closed = False
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        if self._size + len(data) > self.limit:
            raise UploadTooLarge(self.limit)
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)

    def close(self) -> None:
        self.closed = True
        self._parts.clear()


class DataChannel(TlsChannel, DTPHandler):  # type: ignore[misc]
    """A data connection: TLS after PROT P, raw bytes in both TYPEs, uploads forwarded."""

    ac_out_buffer_size = SEND_BYTES

    def __init__(self, sock: socket.socket, cmd_channel: Any) -> None:
        super().__init__(sock, cmd_channel)
        context = cmd_channel.settings.tls
        if self.connected and cmd_channel.protected and context is not None:
            self.start_tls(context)

    def use_sendfile(self) -> bool:
        """sendfile(2) for a local file on a plain connection, whatever the TYPE."""
        return not self._tls_requested and hasattr(self.file_obj, "fileno")

    def enable_receiving(self, _type: str, cmd: str) -> None:
        # Stored as sent in either TYPE: no CRLF translation of phones' files.
        super().enable_receiving("i", cmd)

    def tls_failed(self, error: Exception) -> None:
        event(
            log,
            "ftps_handshake_failed",
            logging.WARNING,
            source=self.cmd_channel.remote_ip,
            connection="data",
            error=str(error)[:200],
        )
        # 522 over the control connection, as RFC 4217 section 10.2 is read by pyftpdlib.
        self.cmd_channel.respond("522 TLS handshake on the data connection failed.")
        self.close()

    def handle_error(self) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, UploadTooLarge):
            self._resp = (
                f"552 Exceeded storage allocation: at most {error.limit} bytes; transfer aborted.",
                session_log.debug,
            )
            self.close()
        elif isinstance(error, UpstreamUnavailable):
            event(
                log,
                "ftp_transfer_broken",
                logging.WARNING,
                source=self.cmd_channel.remote_ip,
                error=str(error)[:200],
            )
            self._resp = (
                "426 The provisioning service broke off the transfer; try again later.",
                session_log.debug,
            )
            self.close()
        else:
            super().handle_error()

    def close(self) -> None:
        if (
            not self._closed
            and self.receive
            and self.transfer_finished
            and isinstance(self.file_obj, UploadBuffer)
        ):
            self._resp = (self.cmd_channel.forward(self.file_obj), session_log.debug)
        super().close()
