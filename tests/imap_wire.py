"""The IMAP response reader shared by the raw test clients (tests/imap/imap_util.py and
tests/clients/client_util.py): whole response lines, literals kept in line."""

import re


class ResponseReader:
    """Reads from `self.sock` into `self.buf`; subclasses open the socket."""

    buf = b""
    recv_size = 65536

    def _fill(self):
        data = self.sock.recv(self.recv_size)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self):
        """One response line, literals included as `{n}\\r\\n<octets>`."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            i = self.buf.index(b"\r\n")
            part, self.buf = self.buf[:i], self.buf[i + 2:]
            out += part
            m = re.search(rb"~?\{(\d+)\}$", part)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
