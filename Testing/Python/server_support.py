"""A real ``medsegai serve`` in a subprocess on a free 127.0.0.1 port, and a real TLS certificate."""
from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import requests

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "MedSegAIInference"
TOKEN = "test-token-0123456789abcdef"
CLI = [sys.executable, "-c", "import sys; from medsegai.cli import main; sys.exit(main())"]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(RUNNER), e.get("PYTHONPATH", "")) if p)
    e.pop("MEDSEGAI_TOKEN", None)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *extra: str, token: Optional[str] = TOKEN, certfile=None, keyfile=None):
        self.port = free_port()
        self.log_path = tmp / f"server-{self.port}.log"
        self.work = tmp / f"work-{self.port}"
        args: List[str] = ["serve", "--port", str(self.port), "-d", "cpu", "-nt", "1", "--work-dir", str(self.work),
                           *extra]
        if token:
            args += ["--token", token]
        if certfile:
            args += ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
        self.scheme = "https" if certfile else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.token = token
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(CLI + args, stdout=self.log, stderr=subprocess.STDOUT, env=env(),
                                     start_new_session=True)

    def wait_ready(self, verify=True, timeout=120.0) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2, verify=verify).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not start")

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()


def make_cert(folder: Path):
    """A self-signed certificate for 127.0.0.1 (its own CA); returns (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medsegai-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def run_cli(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env(),
                          **kwargs)


def same_files(a: Path, b: Path) -> List[str]:
    """Relative names of files that differ or exist on one side only (empty: identical trees)."""
    fa = {p.relative_to(a).as_posix(): p for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b).as_posix(): p for p in b.rglob("*") if p.is_file()}
    diff = sorted(set(fa) ^ set(fb))
    diff += [n for n in sorted(set(fa) & set(fb)) if fa[n].read_bytes() != fb[n].read_bytes()]
    return diff
