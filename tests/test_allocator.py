"""glibc's malloc is kept to one arena once a pass starts threads, unless the user chose."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from monitoring.core import allocator, parallel

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the arena limit is glibc's (mallopt M_ARENA_MAX)"
)

# Counts glibc's arenas (malloc_info's <heap> elements) before and after four threads
# allocate at once; each new thread takes an arena of its own while glibc's limit allows.
_ARENAS_AFTER_THREADS = textwrap.dedent(
    """
    import ctypes, sys, tempfile, threading
    from monitoring.core.allocator import keep_malloc_to_one_arena

    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)

    def arenas():
        with tempfile.NamedTemporaryFile(suffix=".xml") as out:
            handle = libc.fopen(out.name.encode(), b"w")
            libc.malloc_info(0, handle)
            libc.fclose(handle)
            return open(out.name).read().count("<heap nr=")

    limited = keep_malloc_to_one_arena() if sys.argv[1] == "limit" else None
    before = arenas()
    together = threading.Barrier(4)

    def allocate():
        block = bytearray(200_000)  # malloc'd in this thread
        together.wait()
        del block

    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(limited, before, arenas())
    """
)


def _arenas(mode: str, **environment: str) -> tuple[str, int, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env.update(environment)
    done = subprocess.run(
        [sys.executable, "-c", _ARENAS_AFTER_THREADS, mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    limited, before, after = done.stdout.split()
    return limited, int(before), int(after)


@glibc_only
def test_threads_started_after_the_limit_take_no_new_arena():
    limited, before, after = _arenas("limit")
    assert limited == "True"
    assert after == before


@glibc_only
def test_without_the_limit_the_same_threads_take_arenas_of_their_own():
    """The control: the count above would not change anyway."""
    limited, before, after = _arenas("none")
    assert after > before


@glibc_only
def test_a_user_setting_of_malloc_arena_max_is_kept():
    limited, before, after = _arenas("limit", MALLOC_ARENA_MAX="8")
    assert limited == "False"
    assert after > before


def test_the_decision_is_made_once_per_process(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(allocator, "_outcome", None)
    monkeypatch.setattr(allocator, "_set_arena_limit", lambda arenas: calls.append(arenas) or True)
    assert allocator.keep_malloc_to_one_arena() is True
    assert allocator.keep_malloc_to_one_arena() is True
    assert calls == [1]


def test_only_a_pool_with_threads_limits_the_arenas(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(parallel, "keep_malloc_to_one_arena", lambda: calls.append("x"))
    parallel.column_executor(1)
    assert calls == []
    parallel.column_executor(2).shutdown()
    assert calls == ["x"]
