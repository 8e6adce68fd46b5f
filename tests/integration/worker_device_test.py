#!/usr/bin/env python3
"""caldera-worker --device on a machine with or without a GPU (issue 21).

  - `--device cuda:0` with no CUDA device exits 2 naming the device and the
    fix (on a GPU machine: the worker starts instead; that half is skipped);
  - `--device auto` with no device says so in one line, registers as "cpu",
    labels its metrics caldera_worker_info{device="cpu"} and runs a small job
    on the CPU;
  - the civetweb regression: a CUDA-built worker links no CUDA library
    (readelf), its metrics endpoint answers, and the same worker with
    libcublas preloaded (what linking it did) does not -- so the test tells
    the two apart (core/backend/cuda/cuda_libraries.h says why).

  worker_device_test.py --bin-dir build/bin [--cuda-lib-dir DIR]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from service_test_support import fixture_model_dir, free_port

SKIP = 77


def log(msg: str) -> None:
    print(f"[worker-device] {msg}", flush=True)


def scrape(port: int, timeout: float = 5) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        assert r.status == 200, r.status
        return r.read().decode()


def wait_scrape(port: int, proc: subprocess.Popen, seconds: float = 30) -> str:
    """The first answer of the endpoint; raises when the worker exits or it never answers."""
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}")
        try:
            return scrape(port)
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last = e
            time.sleep(0.2)
    raise RuntimeError(f"no answer on port {port}: {last}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_cuda0(worker: str) -> bool:
    """True when cuda:0 was refused (no device); False on a GPU machine."""
    try:
        r = subprocess.run([worker, "--coordinator", "127.0.0.1:1", "--device", "cuda:0"],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        log("--device cuda:0 started a worker: a CUDA device is visible (refusal half skipped)")
        return False
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "--device cuda:0" in r.stderr and "use --device cpu" in r.stderr, r.stderr
    log(f"--device cuda:0 -> exit 2: {r.stderr.strip().splitlines()[-1]}")
    return True


def linked_cuda_libraries(path: str) -> list:
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True)
    return re.findall(r"\[(lib(?:cudart|cublas|cublasLt|cusolver|cusparse)\.so[^\]]*)\]", out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--cuda-lib-dir", default="",
                    help="the CUDA toolkit's lib folder (CUDA builds): runs the civetweb control")
    args = ap.parse_args()
    worker = os.path.join(args.bin_dir, "caldera-worker")
    coordinator = os.path.join(args.bin_dir, "caldera-coordinator")
    calderactl = os.path.join(args.bin_dir, "calderactl")
    model = fixture_model_dir()

    no_device = check_cuda0(worker)

    if shutil.which("readelf"):
        linked = linked_cuda_libraries(worker)
        assert not linked, f"caldera-worker links {linked}: they must be dlopened (cuda_libraries.h)"
        log("caldera-worker links no CUDA library")

    tmp = tempfile.mkdtemp(prefix="worker-device-")
    procs = []
    try:
        port, mport = free_port(), free_port()
        procs.append(subprocess.Popen([
            coordinator, "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(tmp, "state"),
            "--lease-seconds", "5", "--heartbeat-seconds", "0.5"]))
        err_path = os.path.join(tmp, "worker.err")
        with open(err_path, "w") as err:
            w = subprocess.Popen([worker, "--coordinator", f"127.0.0.1:{port}", "--device", "auto",
                                  "--threads", "1", "--poll-seconds", "1",
                                  "--metrics-listen", f"127.0.0.1:{mport}"], stderr=err)
        procs.append(w)
        text = wait_scrape(mport, w)
        text = scrape(mport)  # a second scrape: the request thread survived the first
        device = "cpu" if no_device else None
        if device:
            assert 'caldera_worker_info{device="cpu"} 1' in text, text
        log("metrics endpoint answers twice; " +
            next(l for l in text.splitlines() if l.startswith("caldera_worker_info{")))

        r = subprocess.run([calderactl, "submit", "--server", f"127.0.0.1:{port}", "--model", model,
                            "--calibration", os.path.join(model, "calibration.safetensors"),
                            "--out", os.path.join(tmp, "out"), "--modules", "q_proj",
                            "--iters", "1", "--lplr-iters", "1", "--wait"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert os.path.exists(os.path.join(tmp, "out", "report.json"))
        text = scrape(mport)
        m = re.search(r'caldera_worker_tasks_total\{kind="decompose",outcome="succeeded"\} (\S+)',
                      text)
        assert m and float(m.group(1)) >= 1, text
        with open(err_path) as f:
            lines = f.read().splitlines()
        auto = [l for l in lines if "--device auto" in l]
        if no_device:
            assert len(auto) == 1 and "using the CPU" in auto[0], lines
            assert any("registered as" in l and "(device cpu)" in l for l in lines), lines
        log(f"--device auto ran a job ({m.group(1)} decompose task(s)); said: {auto}")
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)

    # The control: what linking cuBLAS did. Preloading it (its TLS in the static
    # block, as a linked library's is) must break the endpoint, or this test
    # could not tell the two apart.
    cublas = os.path.join(args.cuda_lib_dir, "libcublas.so") if args.cuda_lib_dir else ""
    if cublas and os.path.exists(cublas):
        mport = free_port()
        env = dict(os.environ, LD_PRELOAD=os.path.realpath(cublas))
        p = subprocess.Popen([worker, "--coordinator", "127.0.0.1:1", "--device", "cpu",
                              "--metrics-listen", f"127.0.0.1:{mport}"], env=env,
                             stderr=subprocess.PIPE, text=True)
        try:
            wait_scrape(mport, p, seconds=15)
            scrape(mport)
            broke = False
        except Exception as e:  # exits 2, resets the connection or never answers
            broke = True
            log(f"control: with libcublas preloaded the endpoint fails ({e})")
        finally:
            stop(p)
        assert broke, ("control: the endpoint answered with libcublas preloaded; this test no "
                       "longer detects a linked cuBLAS")
    else:
        log("control skipped: no --cuda-lib-dir (not a CUDA build)")
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
