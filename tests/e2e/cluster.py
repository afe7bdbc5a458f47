"""Start and stop real `strato` processes on loopback for end-to-end tests."""

import os
import shutil
import signal
import socket
import subprocess
import time

import aerospike

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("STRATO_BIN", os.path.join(ROOT, "target", "release", "strato"))


# Raft groups of the first namespace: the server's default (one per partition, 4,096) unless
# STRATO_TEST_GROUPS says otherwise (fewer groups form faster, for a quick run while
# developing). A suite that needs a fixed number passes `groups=` itself.
TEST_GROUPS = int(os.environ["STRATO_TEST_GROUPS"]) if os.environ.get("STRATO_TEST_GROUPS") else None


def free_base_port(span=40):
    """A base port with `span` free ports above it (each node uses port, +1, +2)."""
    for base in range(21000, 60000, 97):
        ok = True
        for p in range(base, base + span):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def info(port, command, timeout=2.0):
    """One info command over a raw socket (independent of the client under test)."""
    body = (command + "\n").encode()
    header = (2 << 56 | 1 << 48 | len(body)).to_bytes(8, "big")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(header + body)
        head = _recv(s, 8)
        size = int.from_bytes(head, "big") & ((1 << 48) - 1)
        text = _recv(s, size).decode()
    line = text.split("\n")[0]
    return line.split("\t", 1)[1] if "\t" in line else ""


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def wait_until(what, predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last error: {last})")


class Cluster:
    def __init__(self, tmpdir, nodes=3, extra_args=(), spares=0, groups=TEST_GROUPS):
        """`nodes` form the cluster; `spares` more (ids nodes+1..) can join it later. The
        first namespace has `groups` Raft groups (None: the server's default, one per
        partition); `extra_args` may set `--groups` itself."""
        self.dir = str(tmpdir)
        self.n = nodes
        self.spares = spares
        self.base = free_base_port(span=10 * (nodes + spares) + 3)
        self.extra = list(extra_args)
        if groups is not None and "--groups" not in self.extra:
            self.extra += ["--groups", str(groups)]
        self.procs = {}

    def port(self, i):
        return self.base + 10 * (i - 1)

    def seeds(self):
        return ",".join(f"127.0.0.1:{self.port(i) + 2}" for i in range(1, self.n + 1))

    def start(self, i):
        data = os.path.join(self.dir, f"n{i}")
        os.makedirs(data, exist_ok=True)
        log = open(os.path.join(self.dir, f"n{i}.log"), "ab")
        args = [BINARY, "serve", "--node-id", str(i), "--port", str(self.port(i)), "--data-dir", data,
                "--seeds", self.seeds()] + self.extra
        # The forming nodes expect each other; a spare only joins (no --bootstrap-expect).
        if i <= self.n:
            args += ["--bootstrap-expect", str(self.n)]
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log)

    def start_all(self):
        for i in range(1, self.n + 1):
            self.start(i)
        self.wait_ready()
        self.warm_up()

    def warm_up(self, keys=64, timeout=30.0):
        """Write keys spread over every group until all succeed, so replication is flowing
        before a test starts (leaders alone do not prove followers accept appends yet)."""
        client = self.client(seed=self.live()[0], total_timeout=2000)
        try:
            pending = set(range(keys))

            def write_all():
                for k in list(pending):
                    try:
                        client.put(("test", "warmup", k), {"v": k})
                        pending.discard(k)
                    except aerospike.exception.AerospikeError:
                        pass
                return not pending
            wait_until("writes to every group", write_all, timeout=timeout)
        finally:
            client.close()

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i, None)
        if p is not None:
            p.send_signal(sig)
            p.wait(timeout=30)

    def stop_all(self):
        for i in list(self.procs):
            self.kill(i)

    def live(self):
        return sorted(self.procs)

    def wait_ready(self, timeout=60.0, namespaces=None):
        """Every live node holds its groups and every group has a leader some node claims
        (in the first namespace listed, or in each of `namespaces`, which every live node
        must know)."""
        def ready():
            for i in self.live():
                if int(info(self.port(i), "partition-generation")) < 0:
                    return False
            if namespaces is None:
                return self.masters_claimed() == 4096
            return all(self.masters_claimed(ns) == 4096 for ns in namespaces)
        wait_until(f"cluster ready ({namespaces or 'first namespace'})", ready, timeout=timeout)

    def masters_claimed(self, namespace=None):
        """How many partitions some live node claims as master: in the first namespace its
        `replicas-leaders` lists, or in `namespace` (which every live node must list)."""
        import base64
        claimed = bytearray(512)
        for i in self.live():
            entries = info(self.port(i), "replicas-leaders").split(";")
            if namespace is None:
                ns = entries[0]
            else:
                found = [e for e in entries if e.split(":", 1)[0] == namespace]
                if not found:
                    return 0
                ns = found[0]
            cols = ns.split(":", 1)[1].split(",")
            bitmap = base64.b64decode(cols[2])
            for k in range(512):
                claimed[k] |= bitmap[k]
        return sum(bin(b).count("1") for b in claimed)

    def leads_some(self, i):
        import base64
        ns = info(self.port(i), "replicas-leaders").split(";")[0]
        bitmap = base64.b64decode(ns.split(":", 1)[1].split(",")[2])
        return any(bitmap)

    def client(self, seed=1, **policies):
        # Commands over a whole namespace (sindex-create, truncate, ...) propose once per group
        # and take 1-2 s at 4,096 groups when the groups were idle (their instances start
        # again): more than the client's default info timeout of 1 s (README, Benchmarks).
        config = {"hosts": [("127.0.0.1", self.port(seed))],
                  "policies": {"total_timeout": 5000, "info": {"timeout": 10000}}}
        config["policies"].update(policies)
        return aerospike.client(config).connect()

    def logs(self):
        out = []
        for i in range(1, self.n + self.spares + 1):
            path = os.path.join(self.dir, f"n{i}.log")
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out.append(f"--- node {i} ---\n" + f.read()[-4000:].decode(errors="replace"))
        return "\n".join(out)


def retry(what, fn, timeout=20.0, transient=(aerospike.exception.AerospikeError,)):
    """fn() until it does not raise one of `transient` (a leader moving, a namespace the
    client's partition map does not know yet); an AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except transient as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} kept failing: {e!r}")
            time.sleep(0.02)
