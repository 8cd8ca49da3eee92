"""Child processes tied to this one: they die with it, and spawned ones never re-run a script's top-level code."""
from __future__ import annotations

import ctypes
import functools
import os
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager
from importlib.machinery import ModuleSpec

PR_SET_PDEATHSIG = 1
_lock = threading.Lock()
_state = {"bound": 0, "parent": 0, "spec": None}


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved here: a Popen preexec_fn must not load libraries in the child


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """In a child: the kernel sends `sig` when the parent exits (Linux's PR_SET_PDEATHSIG; elsewhere nothing). It
    follows the *thread* that started the child, so it suits children of a thread that outlives them; `parent` is
    the pid the child expects, and a parent already gone ends the child at once."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def preexec(sig: int = signal.SIGKILL):
    """A `preexec_fn` for subprocess.Popen / asyncio.create_subprocess_exec: the server dies with this process."""
    return functools.partial(die_with_parent, int(sig), os.getpid())


def die_with(pid: int, sig: int = signal.SIGKILL) -> None:
    """In a child started by any thread, or a grandchild (a forkserver's): a daemon thread ends this process once
    process `pid` has exited (it waits on a pidfd, or looks every 0.2 s where there are none). No-op in `pid`."""
    if pid != os.getpid():
        threading.Thread(target=_watch, args=(pid, sig), daemon=True, name="mathforge-lifeline").start()


def _watch(pid: int, sig: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = -1  # already gone
    except (AttributeError, OSError):  # no pidfds here: look now and then
        while _alive(pid):
            time.sleep(0.2)
        fd = -1
    if fd >= 0:
        select.select([fd], [], [])  # readable once the process has exited
    os.kill(os.getpid(), sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def bound_children():
    """While active: a process this one forks dies with it (PR_SET_PDEATHSIG, set in the child by a fork handler),
    and a spawn / forkserver child does not re-run the `__main__` script, as with `python -m` and notebooks (a
    script without `if __name__ == "__main__":` would otherwise start its build again in every child). Spawned
    children bind themselves with `die_with`: nothing of the parent's code runs in them before theirs."""
    with _lock:
        if _state["bound"] == 0:
            _state["spec"] = _hide_main()
        _state["bound"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["bound"] -= 1
            if _state["bound"] == 0 and _state["spec"] is not None:
                main, spec = _state["spec"]
                main.__spec__, _state["spec"] = spec, None


def _hide_main() -> tuple | None:
    """multiprocessing's children re-run `__main__` unless its spec names a `__main__` module: give it one (the
    original comes back when the last `bound_children` ends). None where children skip it already."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is None and not getattr(main, "__file__", None) or name == "__main__" or \
            (name or "").endswith(".__main__"):
        return None  # a notebook, `python -c`, `python -m package`
    main.__spec__ = ModuleSpec("__main__", None)
    return main, spec


def _before_fork() -> None:
    _state["parent"] = os.getpid()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it
    if _state["bound"]:
        die_with_parent(signal.SIGKILL, _state["parent"])


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
