"""A throwaway one-node Slurm cluster on loopback only (munged, slurmctld, slurmd) for tests, CI and the README."""
from __future__ import annotations

#     python -m mathforge.testing.slurm_cluster install          # Debian's packages, if missing (root; no daemon starts)
#     python -m mathforge.testing.slurm_cluster netns -- CMD...  # CMD in a private network namespace: only `lo`, up
#     python -m mathforge.testing.slurm_cluster up -- CMD...     # the same, with a cluster running around CMD
#
# The daemons listen on every address of their network namespace, so they must run in one that has nothing but
# loopback: `start()` refuses any other (`network_problems`), and `netns`/`up` make one with `unshare --net`. Clients
# (sbatch, squeue, the jobs' own processes) run in the same namespace; a model server on 127.0.0.1 is reachable from
# the jobs there, and nothing outside this machine can reach the cluster.

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")
NODE = "mathforge"
PARTITION = "debug"
# glibc's getaddrinfo(AI_ADDRCONFIG), which Slurm uses, finds no IPv4 address where 127.0.0.1 is the only one
# (check_pf.c skips exactly INADDR_LOOPBACK): a second loopback address on `lo` makes Slurm resolve 127.0.0.1.
SECOND_LOOPBACK = "127.0.0.2/8"
MODULE = "mathforge.testing.slurm_cluster"

CONF = """\
ClusterName=mathforge-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
EnforcePartLimits=ALL
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime={max_time} State=UP
"""


class ClusterError(RuntimeError):
    """The test cluster cannot be installed or started here; the message says why."""


def binary(name: str) -> str | None:
    """A Slurm or munge program: on PATH, or in /usr/sbin (not on every PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    return found


def missing_programs() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if binary(name) is None]


def install() -> None:
    """Install Debian's munge and Slurm packages if a program is missing (root only). A policy-rc.d that refuses
    every service start is in place meanwhile, so the packages' scripts start no daemon on the machine's network."""
    if not missing_programs():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterError(f"missing {', '.join(missing_programs())}: install the Debian packages "
                           f"{' '.join(PACKAGES)} (needs root and apt-get)")
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    finally:
        if placed:
            policy.unlink()
    if missing_programs():
        raise ClusterError(f"still missing after install: {', '.join(missing_programs())}")


def namespace_addresses(pid: int | str = "self") -> dict[str, list[str]]:
    """Every interface of `pid`'s network namespace with its addresses (`ip -j addr`, run in that namespace)."""
    command = ["ip", "-j", "addr"]
    if str(pid) != "self" and _netns(pid) != _netns("self"):
        command = ["nsenter", f"--net=/proc/{pid}/ns/net", *command]
    listing = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", [])] for link in listing}


def network_problems(pid: int | str = "self") -> list[str]:
    """Why `pid`'s network namespace is not loopback-only (empty when it is): any interface but `lo`, any address
    outside 127.0.0.0/8 and ::1, or `lo` down."""
    problems = []
    for name, addresses in namespace_addresses(pid).items():
        if name != "lo":
            problems.append(f"interface {name} ({', '.join(addresses) or 'no address'})")
        problems += [f"address {a} on {name}" for a in addresses if not ipaddress.ip_address(a).is_loopback]
    flags = Path(f"/proc/{pid}/net/dev").read_text()
    if "lo:" not in flags:
        problems.append("no lo interface")
    return problems


def _netns(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket `pid` listens on, read from its namespace's /proc tables."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))  # /proc prints 32-bit words host-order
            found.append((str(ipaddress.ip_address(raw)), int(hex_port, 16)))
    return found


def why_not() -> str | None:
    """Why a test cluster cannot start in this process (None when it can)."""
    if missing_programs():
        return f"Slurm/munge not installed ({', '.join(missing_programs())}; `python -m {MODULE} install`)"
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root"
    try:
        problems = network_problems()
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        return f"cannot read this network namespace: {exc}"
    if problems:
        return (f"not in a loopback-only network namespace ({'; '.join(problems[:3])}); run the tests under "
                f"`python -m {MODULE} netns -- ...`")
    return None


class SlurmCluster:
    """munged + slurmctld + slurmd as child processes, state and logs under `root`; one node of `cpus` CPUs and
    `memory_mb` MB in one partition. `start()` returns once the node is idle and sets SLURM_CONF in os.environ."""

    def __init__(self, root: str | Path | None = None, cpus: int = 2, memory_mb: int = 8192,
                 max_time: str = "INFINITE", ports: tuple[int, int] = (6817, 6818)):
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="mathforge-slurm-"))
        self.cpus, self.memory_mb, self.max_time, self.ports = cpus, memory_mb, max_time, ports
        self.conf = self.root / "slurm.conf"
        self.processes: dict[str, subprocess.Popen] = {}
        self._previous_conf = os.environ.get("SLURM_CONF")

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> "SlurmCluster":
        reason = why_not()
        if reason:
            raise ClusterError(reason)
        if SECOND_LOOPBACK.split("/")[0] not in namespace_addresses()["lo"]:
            subprocess.run(["ip", "addr", "add", SECOND_LOOPBACK, "dev", "lo"], check=True)
        self._write_files()
        os.environ["SLURM_CONF"] = str(self.conf)
        try:
            munge = self.root / "munge"
            self._spawn("munged", "--foreground", "--force", f"--key-file={self.root / 'key' / 'munge.key'}",
                        f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
                        f"--seed-file={munge / 'munged.seed'}", f"--log-file={self.root / 'log' / 'munged.log'}")
            self._wait_for(lambda: (munge / "munge.socket").exists(), 10, "munged socket")
            self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
            self._spawn("slurmd", "-D", "-N", NODE, "-f", str(self.conf))
            self._wait_for(self._node_idle, timeout, f"node {NODE} idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _write_files(self) -> None:
        for folder in ("key", "munge", "state", "spool", "log"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "key").chmod(0o700)
        key = self.root / "key" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(CONF.format(
            host=socket.gethostname().split(".")[0], root=self.root, user="root", node=NODE, cpus=self.cpus,
            memory_mb=self.memory_mb, partition=PARTITION, max_time=self.max_time, ctld_port=self.ports[0],
            slurmd_port=self.ports[1]))

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / "log" / f"{name}.stderr", "ab")
        self.processes[name] = subprocess.Popen([binary(name), *args], stdout=log, stderr=log,
                                                stdin=subprocess.DEVNULL, start_new_session=True,
                                                env={**os.environ, **self.env})
        log.close()

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, p in self.processes.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise ClusterError(f"test cluster: no {what} ({'exited: ' + ', '.join(dead) if dead else 'timeout'})"
                                   f"\n{self.logs()}")
            time.sleep(0.2)

    def _node_idle(self) -> bool:
        result = self.slurm("sinfo", "-h", "-n", NODE, "-o", "%T", check=False)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def slurm(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        result = subprocess.run([binary(command[0]), *command[1:]], capture_output=True, text=True, timeout=60,
                                env={**os.environ, **self.env})
        if check and result.returncode:
            raise ClusterError(f"{' '.join(command)}: {result.stderr.strip()}")
        return result

    def logs(self, lines: int = 20) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def daemon_pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items() if p.poll() is None}

    def stop(self) -> list[str]:
        """Cancel every job, stop the daemons and whatever they left running; returns what survived (nothing)."""
        if "slurmctld" in self.daemon_pids():
            jobs = self.slurm("squeue", "-h", "-o", "%A", check=False).stdout.split()
            if jobs:
                self.slurm("scancel", *jobs, check=False)
                deadline = time.monotonic() + 15
                while self.slurm("squeue", "-h", "-o", "%A", check=False).stdout.strip() \
                        and time.monotonic() < deadline:
                    time.sleep(0.2)
        started = {pid: _start_time(pid) for pid in _descendants(list(self.daemon_pids().values()))}
        for name in ("slurmd", "slurmctld", "munged"):  # the node first, munge last (the others need it to stop)
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid, start in started.items():  # job steps (slurmstepd) and their tasks, by pid, if the same process
            if _start_time(pid) == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
        left = [f"{pid} {_command(pid)}" for pid, start in started.items() if _start_time(pid) == start]
        if self._previous_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._previous_conf
        if self._own_root and not left:
            shutil.rmtree(self.root, ignore_errors=True)
        return left

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    return children


def _descendants(pids: list[int]) -> list[int]:
    children, found, todo = _children(), [], list(pids)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie is gone already; field 22 of stat: start time


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _inside(cluster: bool, command: list[str]) -> int:
    """In the fresh namespace: `lo` up, then CMD (inside a started cluster when asked); CMD's exit status."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if not cluster:
        return subprocess.call(command)
    with SlurmCluster() as running:
        print(f"slurm_cluster: node {NODE} idle, SLURM_CONF={running.conf}", file=sys.stderr, flush=True)
        return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: python -m {MODULE} install | netns -- CMD... | up -- CMD..."
    if not args or args[0] not in ("install", "netns", "up", "_inside"):
        print(usage, file=sys.stderr)
        return 2
    action, rest = args[0], args[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    try:
        if action == "_inside":
            return _inside(rest[0] == "up", rest[1:])
        install()
        if action == "install":
            return 0
        if not rest:
            print(usage, file=sys.stderr)
            return 2
        return subprocess.call(["unshare", "--net", "--", sys.executable, "-m", MODULE, "_inside", action, *rest])
    except ClusterError as exc:
        print(f"slurm_cluster: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
