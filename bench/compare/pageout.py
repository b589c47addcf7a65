# Drops the clean file-backed pages of a running process (its executable's code and read-only
# data, shared libraries) from its resident set: process_madvise(MADV_PAGEOUT) on every
# read-only file mapping. What the process then touches comes back, so its RSS a while later is
# what it needs resident, apart from what start-up once touched. Measurement only (the memory
# phase, memory.ts); Linux 5.10 or later, root or CAP_SYS_NICE.
#   python3 bench/compare/pageout.py PID     prints the bytes the kernel was asked to page out

import ctypes
import os
import sys

SYS_PIDFD_OPEN = 434
SYS_PROCESS_MADVISE = 440
MADV_PAGEOUT = 21


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def main(pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        sys.exit(f"pidfd_open({pid}): {os.strerror(ctypes.get_errno())}")
    asked = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            # address perms offset dev inode path: read-only mappings of a file only
            if len(fields) < 6 or not fields[5].startswith("/") or "w" in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            iov = IoVec(start, end - start)
            done = libc.syscall(SYS_PROCESS_MADVISE, pidfd, ctypes.byref(iov), 1, MADV_PAGEOUT, 0)
            if done < 0:
                sys.exit(f"process_madvise({fields[5]}): {os.strerror(ctypes.get_errno())}")
            asked += done
    os.close(pidfd)
    print(asked)


main(int(sys.argv[1]))
