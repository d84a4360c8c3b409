#!/usr/bin/env python3
"""What one durable log write costs on this machine's disk, by method: wall and CPU time per
write, for a buffered write + fdatasync (the log's fallback), direct IO + fdatasync, and one
O_DIRECT|O_DSYNC write (what the log does where the filesystem allows it), into a preallocated
16 MiB file overwritten in place, as the log is. Bounded: N writes per method and round.
    python3 scripts/disk-probe.py [DIR] [N]      (DIR defaults to target/, N to 3000)"""
import mmap
import os
import resource
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
SIZE = 16 << 20
PATH = os.path.join(DIR, "disk-probe.tmp")


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(name, flags, length, sync):
    fd = os.open(PATH, os.O_RDWR | flags)
    buf = mmap.mmap(-1, 8192)  # page-aligned, as direct IO wants
    buf.write(b"x" * 8192)
    data, offset = memoryview(buf)[:length], 0
    c0, t0 = cpu(), time.monotonic()
    for _ in range(N):
        os.pwrite(fd, data, offset)
        if sync:
            os.fdatasync(fd)
        offset = (offset + length) % (SIZE - 8192)
    c1, t1 = cpu(), time.monotonic()
    os.close(fd)
    print(f"{name:30s} wall {1e6 * (t1 - t0) / N:6.1f} us/write   CPU {1e6 * (c1 - c0) / N:6.1f} us/write")


os.makedirs(DIR, exist_ok=True)
fd = os.open(PATH, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
zeros = b"\0" * (1 << 20)
for i in range(SIZE // len(zeros)):
    os.pwrite(fd, zeros, i * len(zeros))
os.fsync(fd)
os.close(fd)
try:
    for _ in range(2):
        run("buffered 2 KiB + fdatasync", 0, 2048, True)
        run("O_DIRECT 4 KiB + fdatasync", os.O_DIRECT, 4096, True)
        run("O_DIRECT|O_DSYNC 4 KiB", os.O_DIRECT | os.O_DSYNC, 4096, False)
finally:
    os.remove(PATH)
