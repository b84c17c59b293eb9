"""A private Dovecot 2.3 (Debian's dovecot-imapd, -pop3d, -lmtpd) on loopback, as the
source server of the import tests: IMAP, POP3 and LMTP listeners, Maildir++ homes under
a directory the `dovecot` user can write."""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
PASSWORD = "pw"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    def __init__(self):
        pw = pwd.getpwnam("dovecot")
        self.root = Path(tempfile.mkdtemp(prefix="letterbox-dovecot-"))
        os.chmod(self.root, 0o755)
        for d in ("run", "state", "home"):
            (self.root / d).mkdir(parents=True)
        os.chown(self.root / "home", pw.pw_uid, pw.pw_gid)
        self.imap, self.pop3, self.lmtp = free_port(), free_port(), free_port()
        conf = self.root / "dovecot.conf"
        conf.write_text(
            f"""protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.root}/home/%u/Maildir
first_valid_uid = 1
postmaster_address = postmaster@example.com
service imap-login {{
  inet_listener imap {{
    port = {self.imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  chroot =
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp}
  }}
}}
service anvil {{
  chroot =
}}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={self.root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""
        )
        subprocess.run([DOVECOT, "-c", str(conf)], check=True)
        deadline = time.time() + 10
        for port in (self.imap, self.pop3, self.lmtp):
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)

    def maildir(self, user):
        return self.root / "home" / user / "Maildir"

    def stop(self):
        pidfile = self.root / "run" / "master.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except ProcessLookupError:
                pass
            time.sleep(0.3)
        shutil.rmtree(self.root, ignore_errors=True)
