"""Explicit FTPS (RFC 4217) for pyftpdlib channels, on the stdlib `ssl` module.

pyftpdlib's own TLS handlers need pyOpenSSL and an `OpenSSL.SSL.Context`; the
relay's TLS policy is an `ssl.SSLContext` (certs/tls.py: TLS 1.2+, ECDHE with
AEAD, session tickets), and one cannot be turned into the other. This mixin
does with `ssl.SSLContext.wrap_socket` what pyftpdlib's SSLConnectionMixin does
with pyOpenSSL, for the same non-blocking channels: the handshake is driven by
the channel's read and write events; a TLS read or write that needs the other
direction first (WANT_READ / WANT_WRITE) makes the channel wait for that event;
closing sends close_notify, so a client can tell a complete download from a
cut one (RFC 4217 section 12.6: truncation attacks).

Session resumption on the data connection (RFC 4217 section 10.2) comes from
the shared context: a client offering the control connection's ticket resumes.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from pyftpdlib.exceptions import _RetryError
from pyftpdlib.ioloop import AsyncChat


class TlsChannel(AsyncChat):  # type: ignore[misc]
    """Mixin placed before a pyftpdlib channel class (FTPHandler, DTPHandler) in the bases."""

    socket: Any
    _tls_requested = False
    _tls_handshaking = False
    _tls_open = False
    _tls_want_read = False
    _tls_want_write = False

    @property
    def tls_open(self) -> bool:
        """True once the handshake is complete and until the channel closes."""
        return self._tls_open

    def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the connected socket; the handshake runs on the next events."""
        try:
            self.socket = context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError):
            # The peer went away between the command and the wrap.
            self.close()
            return
        self._tls_requested = True
        self._tls_handshaking = True

    def tls_failed(self, error: Exception) -> None:
        """The handshake failed: the client spoke no acceptable TLS."""
        self.close()

    def readable(self) -> bool:
        return bool(self._tls_handshaking or self._tls_want_read or super().readable())

    def writable(self) -> bool:
        return bool(self._tls_want_write or super().writable())

    def handle_read_event(self) -> None:
        if not self._tls_requested:
            super().handle_read_event()
            return
        with self._tls_events():
            self._tls_want_read = False
            if self._tls_handshaking:
                self._handshake()
            else:
                super().handle_read_event()

    def handle_write_event(self) -> None:
        if not self._tls_requested:
            super().handle_write_event()
            return
        with self._tls_events():
            self._tls_want_write = False
            if self._tls_handshaking:
                self._handshake()
            else:
                super().handle_write_event()

    def send(self, data: bytes) -> int:
        try:
            return int(super().send(data))
        except ssl.SSLWantWriteError:
            self._tls_want_write = True
        except ssl.SSLWantReadError:
            self._tls_want_read = True
        except ssl.SSLError:
            # close_notify, a truncated or corrupt record: the peer is gone either way.
            self.handle_close()
        return 0

    def recv(self, size: int) -> bytes:
        try:
            return bytes(super().recv(size))
        except ssl.SSLWantReadError:
            self._tls_want_read = True
            raise _RetryError from None
        except ssl.SSLWantWriteError:
            self._tls_want_write = True
            raise _RetryError from None
        except ssl.SSLError:
            self.handle_close()
            return b""

    def close(self) -> None:
        if self._tls_open and not self._closed:
            self._tls_open = False
            # Sends close_notify; the peer's own is not waited for (non-blocking).
            with suppress(OSError, ValueError):
                self.socket.unwrap()
        self._tls_handshaking = False
        super().close()

    def _handshake(self) -> None:
        try:
            self.socket.do_handshake()
        except ssl.SSLWantReadError:
            self._tls_want_read = True
        except ssl.SSLWantWriteError:
            self._tls_want_write = True
        except (ssl.SSLError, OSError) as exc:
            self._tls_handshaking = False
            self.tls_failed(exc)
        else:
            self._tls_handshaking = False
            self._tls_open = True

    @contextmanager
    def _tls_events(self) -> Iterator[None]:
        """Poll for what the TLS layer waits on, besides what the channel wants."""
        waiting = self._tls_want_read or self._tls_want_write
        yield
        if self._closed:
            return
        if self._tls_want_read:
            self._modify(self._wanted_io_events | self.ioloop.READ)
        elif self._tls_want_write:
            self._modify(self._wanted_io_events | self.ioloop.WRITE)
        elif waiting:
            self._modify(self._wanted_io_events)

    def _modify(self, events: int) -> None:
        self.modify_ioloop_events(events)
