#!/usr/bin/env python3
"""Disk full, for real: the coordinator's --data-dir on a 4 MiB tmpfs that the
test fills (issue 17).

  - a job is created while there is space;
  - the file system is filled: CreateJob fails with UNAVAILABLE (calderactl's
    "retry me" exit code) and a message naming the data directory; list and
    status keep working; the coordinator does not exit;
  - the filler is removed: CreateJob works again (within the coordinator's
    1 s probe), and a restarted coordinator reads back both jobs.

The tmpfs is mounted in a private mount namespace (`unshare -rm`, no root
needed where unprivileged user namespaces are allowed); where that is not
possible the test exits 77, which CTest reports as skipped. The in-process
variant with SQLite's own limit is tests/unit/server/state_degraded_test.cc.

  disk_full_test.py --bin-dir build/bin
"""
import argparse
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time

from service_test_support import fixture_model_dir, free_port

SKIP = 77
INNER = "CALDERA_DISK_FULL_INNER"


def log(msg: str) -> None:
    print(f"[disk-full] {msg}", flush=True)


def fill(path: str) -> int:
    """Writes `path` until the file system is full; the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # The last partial block, byte by byte is too slow: 4 KiB steps.
        small = b"\0" * 4096
        while True:
            try:
                written += f.write(small)
            except OSError:
                break
    return written


def inner(bin_dir: str) -> int:
    work = tempfile.mkdtemp(prefix="caldera-disk-full-")
    data = os.path.join(work, "state")
    os.makedirs(data)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", data],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f"cannot mount a tmpfs here ({r.stderr.strip()}); skipped")
        return SKIP
    model = fixture_model_dir()
    port = free_port()
    server = f"127.0.0.1:{port}"
    ctl = os.path.join(bin_dir, "calderactl")
    coordinator_argv = [os.path.join(bin_dir, "caldera-coordinator"), "--listen", server,
                        "--data-dir", data, "--metrics-listen", f"127.0.0.1:{free_port()}"]
    coord_log = open(os.path.join(work, "coordinator.log"), "wb")
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            log(f"FAIL: {what}")

    def run(*args):
        r = subprocess.run([ctl, *args, "--server", server], capture_output=True, text=True,
                           timeout=60)
        return r.returncode, r.stdout + r.stderr

    def submit(i):
        return run("submit", "--model", model, "--calibration",
                   f"{model}/calibration.safetensors", "--out", os.path.join(work, f"out{i}"),
                   "--rank", "8", "--iters", "1")

    def start():
        p = subprocess.Popen(coordinator_argv, stdout=coord_log, stderr=subprocess.STDOUT)
        for _ in range(300):
            if run("list")[0] == 0:
                return p
            time.sleep(0.1)
        raise RuntimeError("the coordinator did not come up")

    proc = start()
    try:
        rc, out = submit(1)
        check(rc == 0, f"the first submit (space left) failed: {out}")
        filler = os.path.join(data, "filler")
        log(f"filled the tmpfs with {fill(filler)} bytes")

        rc, out = submit(2)
        log(f"submit on a full disk: exit {rc}: {out.strip()}")
        check(rc != 0, "a submit on a full disk succeeded")
        check("UNAVAILABLE" in out or "retry" in out.lower(),
              f"the refusal does not say UNAVAILABLE / retry: {out}")
        check(data in out, f"the refusal does not name the data directory {data}: {out}")
        check(proc.poll() is None, "the coordinator exited on a full disk")
        rc, out = run("list")
        check(rc == 0 and out.count("jobs/") == 1, f"list on a full disk: exit {rc}: {out}")
        rc, out = submit(3)
        check(rc != 0, "a second submit on a full disk succeeded")

        os.unlink(filler)
        time.sleep(1.5)  # the coordinator probes at most once a second
        rc, out = submit(2)
        check(rc == 0, f"submit after space returned failed: exit {rc}: {out}")
        rc, out = run("list")
        check(rc == 0 and out.count("jobs/") == 2, f"list after recovery: {out}")
        check(proc.poll() is None, "the coordinator exited")

        proc.terminate()
        proc.wait(timeout=15)
        proc = start()
        rc, out = run("list")
        check(rc == 0 and out.count("jobs/") == 2, f"list after a restart: {out}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
        coord_log.close()
        subprocess.run(["umount", data])
    if failures:
        log(f"coordinator log: {os.path.join(work, 'coordinator.log')}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    log("PASS: UNAVAILABLE on a full disk, reads kept working, recovered when space returned")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True)
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    if os.environ.get(INNER):
        return inner(bin_dir)
    if shutil.which("unshare") is None:
        log("unshare (util-linux) is missing; skipped")
        return SKIP
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        log(f"no private mount namespace here ({probe.stderr.strip()}); skipped")
        return SKIP
    env = dict(os.environ, **{INNER: "1"})
    return subprocess.run(["unshare", "-rm", sys.executable, os.path.abspath(__file__),
                           "--bin-dir", bin_dir], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
