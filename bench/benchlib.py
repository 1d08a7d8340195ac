"""Small helpers the benchmark scripts share (standard library only)."""
import socket
import subprocess
import time
import urllib.request


def free_port():
    """A loopback port nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=30):
    """True once `url` answers, False after `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return True
        except Exception:
            time.sleep(0.05)
    return False


class LoopbackServer:
    """A baseline server process on a free loopback port, started by
    `argv_for(port)` and ready once GET / answers; its output is discarded."""

    def __init__(self, name, argv_for):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(argv_for(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_http(self.url + "/"):
            self.proc.kill()
            raise SystemExit(f"{name} did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
