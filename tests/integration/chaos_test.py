#!/usr/bin/env python3
"""Chaos test: jobs on a real coordinator and 3 real workers (loopback only)
while a loop SIGKILLs a random process every few seconds and restarts it.

What it checks (issue 17):
  - every job SUCCEEDS;
  - every task of every job is committed exactly once: in the coordinator's
    state database (its `attempts` table) each task has exactly one attempt
    with outcome `committed`, and it is the one the task names;
  - every output checkpoint is byte-identical (all files but report.json,
    which holds timings) to an undisturbed run of the same spec
    (`calderactl compress`, the embedded coordinator);
  - no scratch data is left in any output.

Jobs run in rounds of 3 (three different specs, each with its own output);
rounds continue until the kill loop has made --kills kills, then the loop
stops and the last round finishes undisturbed. Victims are chosen at random
(seeded: --seed) among the coordinator and the workers; each is restarted
after a short pause on the same ports and data directory.

  chaos_test.py --bin-dir build/bin [--kills 10] [--seed 1] [--interval 2 4]
  scripts/chaos.sh --kills 100        # the long run, by hand

CALDERA_FIXTURES_DIR holds stories260K/ (default the bundled models/ of the
checkout). Exit status 0 when every check held; the figures (kills by victim,
attempts, runtime) are printed at the end.
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import service_test_support
from service_test_support import free_port

# Three specs, small and fast; they differ so that each job's output is its
# own. The third runs on a random mixture-of-experts model (Mixtral layout, 4
# experts, top-2: each expert's matrices their own tasks), the others on the
# fixture.
SPECS = [
    ["--seed", "7", "--rank", "8", "--iters", "1", "--lplr-iters", "1"],
    ["--seed", "11", "--rank", "4", "--iters", "2", "--lplr-iters", "1",
     "--calibration-shards", "2"],
    ["--seed", "3", "--rank", "8", "--iters", "1", "--lplr-iters", "2", "--q-bits", "3"],
]
SPEC_MODELS = ["fixture", "fixture", "moe"]
MOE_MODEL = ["--arch", "MixtralForCausalLM", "--experts", "4", "--experts-per-token", "2",
             "--hidden", "64", "--intermediate", "96", "--layers", "2", "--vocab", "256",
             "--samples", "16", "--seq-len", "64"]


def fixture_model_dir() -> str:
    path = service_test_support.fixture_model_dir()
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        sys.exit(f"chaos_test: {path} is missing; set CALDERA_FIXTURES_DIR")
    return path


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Cluster:
    """1 coordinator + N workers; each can be SIGKILLed and restarted."""

    def __init__(self, bin_dir: str, work: str, workers: int):
        self.bin_dir = bin_dir
        self.data_dir = os.path.join(work, "state")
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        self.worker_ports = [free_port() for _ in range(workers)]
        self.server = f"127.0.0.1:{self.port}"
        self.procs = {}  # name -> Popen
        self.starts = {}  # name -> count
        self.lock = threading.Lock()

    def names(self):
        return ["coordinator"] + [f"worker{i}" for i in range(len(self.worker_ports))]

    def _argv(self, name: str):
        if name == "coordinator":
            # Short leases so that a killed worker's task is re-queued fast; a
            # high attempt limit because chaos kills are not the task's fault.
            return [os.path.join(self.bin_dir, "caldera-coordinator"), "--listen", self.server,
                    "--data-dir", self.data_dir, "--metrics-listen",
                    f"127.0.0.1:{self.metrics_port}", "--lease-seconds", "3",
                    "--heartbeat-seconds", "0.5", "--max-attempts", "1000"]
        i = int(name[len("worker"):])
        return [os.path.join(self.bin_dir, "caldera-worker"), "--coordinator", self.server,
                "--threads", "1", "--poll-seconds", "1", "--metrics-listen",
                f"127.0.0.1:{self.worker_ports[i]}"]

    def start(self, name: str):
        with self.lock:
            n = self.starts.get(name, 0) + 1
            self.starts[name] = n
            out = open(os.path.join(self.logs, f"{name}.{n}.log"), "wb")
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
            self.procs[name] = subprocess.Popen(self._argv(name), stdout=out,
                                                stderr=subprocess.STDOUT, env=env)
            out.close()

    def kill(self, name: str):
        with self.lock:
            p = self.procs.get(name)
        if p is None:
            return
        p.send_signal(signal.SIGKILL)
        p.wait()

    def stop_all(self):
        with self.lock:
            procs = list(self.procs.values())
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def ctl(self, *args, timeout=60):
        """calderactl ARGS --server this; (exit code, stdout+stderr)."""
        try:
            r = subprocess.run([os.path.join(self.bin_dir, "calderactl"), *args, "--server",
                                self.server], capture_output=True, text=True, timeout=timeout)
            return r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired:
            return -1, "timed out"

    def wait_ready(self, timeout=30.0):
        end = time.time() + timeout
        while time.time() < end:
            if self.ctl("list", timeout=10)[0] == 0:
                return True
            time.sleep(0.1)
        return False


class KillLoop(threading.Thread):
    """SIGKILLs a random process every uniform(lo, hi) seconds, restarts it."""

    def __init__(self, cluster: Cluster, target: int, lo: float, hi: float, rng: random.Random):
        super().__init__(daemon=True)
        self.cluster, self.target, self.lo, self.hi, self.rng = cluster, target, lo, hi, rng
        self.kills = {name: 0 for name in cluster.names()}
        self.stop = threading.Event()

    def total(self):
        return sum(self.kills.values())

    def run(self):
        while not self.stop.is_set() and self.total() < self.target:
            if self.stop.wait(self.rng.uniform(self.lo, self.hi)):
                break
            victim = self.rng.choice(self.cluster.names())
            self.cluster.kill(victim)
            self.kills[victim] += 1
            log(f"kill {self.total()}/{self.target}: SIGKILL {victim}")
            time.sleep(self.rng.uniform(0.1, 0.8))  # down for a moment
            self.cluster.start(victim)


def submit(cluster: Cluster, model: str, spec, out: str, request_id: str, deadline: float) -> str:
    """Submits with a request id, retrying while the coordinator is down."""
    args = ["submit", "--model", model, "--calibration", f"{model}/calibration.safetensors",
            "--out", out, "--request-id", request_id, *spec]
    last = ""
    while time.time() < deadline:
        rc, text = cluster.ctl(*args, timeout=30)
        if rc == 0:
            lines = [line for line in text.strip().splitlines() if line.startswith("jobs/")]
            if lines:
                return lines[-1].strip()
        last = text
        time.sleep(0.5)
    raise RuntimeError(f"could not submit {request_id}: {last}")


def status(cluster: Cluster, name: str):
    rc, text = cluster.ctl("status", name, "-o", "json", timeout=20)
    if rc != 0:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def compare_dirs(ref: str, out: str):
    """Problems (a list of strings) between the reference and an output."""
    problems = []
    ref_files = sorted(f for f in os.listdir(ref) if f != "report.json")
    out_files = sorted(f for f in os.listdir(out) if f != "report.json")
    if ref_files != out_files:
        problems.append(f"{out}: files {out_files} != reference {ref_files}")
    for f in ref_files:
        p = os.path.join(out, f)
        if not os.path.isfile(p):
            continue
        with open(os.path.join(ref, f), "rb") as a, open(p, "rb") as b:
            if a.read() != b.read():
                problems.append(f"{p} differs from the undisturbed run")
    if not os.path.isfile(os.path.join(out, "report.json")):
        problems.append(f"{out}: report.json is missing")
    return problems


def check_exactly_once(db_path: str, job_ids):
    """Problems with commits in the state database, and (tasks, attempts)."""
    problems = []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    tasks = attempts = 0
    try:
        for job_id in job_ids:
            rows = db.execute("SELECT id, committed_attempt FROM tasks WHERE job_id = ?",
                              (job_id,)).fetchall()
            if not rows:
                problems.append(f"{job_id}: no tasks in the state database")
            for task_id, committed in rows:
                tasks += 1
                outcomes = db.execute("SELECT id, outcome FROM attempts WHERE task_id = ?",
                                      (task_id,)).fetchall()
                attempts += len(outcomes)
                won = [a for a, o in outcomes if o == "committed"]
                if len(won) != 1:
                    problems.append(f"{task_id}: {len(won)} committed attempts ({won})")
                elif won[0] != committed:
                    problems.append(f"{task_id}: committed attempt {won[0]} but the task "
                                    f"names {committed}")
    finally:
        db.close()
    return problems, tasks, attempts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True, help="build/bin with the three binaries")
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs in total (default 10)")
    ap.add_argument("--interval", type=float, nargs=2, default=[2.0, 4.0], metavar=("LO", "HI"),
                    help="seconds between kills, uniform in [LO, HI] (default 2 4)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the victim choice")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--round-timeout", type=float, default=600,
                    help="seconds one round of 3 jobs may take (default 600)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    bin_dir = os.path.abspath(args.bin_dir)
    rng = random.Random(args.seed)
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="caldera-chaos-")
    log(f"work directory {work}; {args.kills} kills, interval {args.interval}, seed {args.seed}")
    moe = os.path.join(work, "moe-model")
    r = subprocess.run([os.path.join(bin_dir, "calderactl"), "make-test-model", "--out", moe,
                        "--tokens-out", os.path.join(moe, "calibration.safetensors"), *MOE_MODEL],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f"make-test-model failed: {r.stdout}{r.stderr}")
        return 1
    models = {"fixture": fixture_model_dir(), "moe": moe}

    # 1. Undisturbed references (the embedded coordinator; one BLAS thread per
    # worker like the cluster's, since the summation order follows the threads).
    refs = []
    for i, spec in enumerate(SPECS):
        ref = os.path.join(work, f"ref{i}")
        model = models[SPEC_MODELS[i]]
        r = subprocess.run([os.path.join(bin_dir, "calderactl"), "compress", "--model", model,
                            "--calibration", f"{model}/calibration.safetensors", "--out", ref,
                            "--workers", "3", "--threads", "1", *spec], capture_output=True, text=True,
                           env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        if r.returncode != 0:
            log(f"reference run {i} failed: {r.stdout}{r.stderr}")
            return 1
        refs.append(ref)
    log(f"3 undisturbed references in {time.time() - t0:.1f} s")

    # 2. The cluster and the kill loop.
    cluster = Cluster(bin_dir, work, args.workers)
    for name in cluster.names():
        cluster.start(name)
    if not cluster.wait_ready():
        log("the coordinator did not come up")
        cluster.stop_all()
        return 1
    killer = KillLoop(cluster, args.kills, args.interval[0], args.interval[1], rng)
    t_chaos = time.time()
    killer.start()

    problems = []
    jobs = []  # (name, spec index, out)
    round_no = 0
    try:
        while True:
            round_no += 1
            deadline = time.time() + args.round_timeout
            this_round = []
            for i, spec in enumerate(SPECS):
                out = os.path.join(work, f"out-r{round_no}-j{i}")
                name = submit(cluster, models[SPEC_MODELS[i]], spec, out,
                              f"chaos-r{round_no}-j{i}", deadline)
                this_round.append((name, i, out))
            log(f"round {round_no}: submitted {', '.join(n for n, _, _ in this_round)}")
            pending = {n for n, _, _ in this_round}
            final = {}
            while pending and time.time() < deadline:
                for n in sorted(pending):
                    j = status(cluster, n)
                    if j and j.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED"):
                        final[n] = j
                        pending.discard(n)
                time.sleep(0.5)
            for n in pending:
                problems.append(f"{n}: did not finish within {args.round_timeout} s")
            for n, j in final.items():
                if j.get("state") != "SUCCEEDED":
                    problems.append(f"{n}: {j.get('state')}: {j.get('error', '')}")
            jobs.extend(this_round)
            log(f"round {round_no} done ({killer.total()} kills so far)")
            if problems or not killer.is_alive():
                break
    finally:
        killer.stop.set()
        killer.join()
        chaos_seconds = time.time() - t_chaos
        cluster.stop_all()

    # 3. Exactly-once commits in the state database, then the bytes.
    job_ids = [n.split("/", 1)[1] for n, _, _ in jobs]
    db_problems, tasks, attempts = check_exactly_once(os.path.join(cluster.data_dir,
                                                                   "coordinator.db"), job_ids)
    problems += db_problems
    for n, i, out in jobs:
        if not os.path.isdir(out):
            problems.append(f"{n}: no output at {out}")
            continue
        problems += compare_dirs(refs[i], out)
        if os.path.exists(os.path.join(out, ".caldera-scratch")):
            problems.append(f"{n}: scratch left in {out}")

    kills = ", ".join(f"{k} {v}" for k, v in killer.kills.items())
    log(f"figures: {killer.total()} kills ({kills}); {len(jobs)} jobs in {round_no} rounds; "
        f"{tasks} tasks, {attempts} attempts ({attempts - tasks} extra from kills); "
        f"chaos phase {chaos_seconds:.1f} s, total {time.time() - t0:.1f} s")
    if killer.total() < args.kills:
        problems.append(f"only {killer.total()} of {args.kills} kills were made")
    if problems:
        for p in problems:
            log(f"FAIL: {p}")
        log(f"logs kept in {work}")
        return 1
    log(f"PASS: every job SUCCEEDED, every task committed exactly once, "
        f"outputs byte-identical to the undisturbed runs")
    if not args.keep:
        subprocess.run(["rm", "-rf", work])
    return 0


if __name__ == "__main__":
    sys.exit(main())
