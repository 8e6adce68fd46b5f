"""caldera_local as a Python user gets it: `pip install client/python_local` into a
fresh virtual environment (the C++ extension built by the package's setup.py, with
the repository's build folder), then compress + eval + export + tokenize on the
bundled model stories260K in that environment, in process. Run by ctest as
python_local_test (tqdm is not installed there: progress falls back to lines).
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "tools"))

from caldera_cluster import fixture_model_dir  # noqa: E402

# Small settings: the whole job takes a few seconds on 2 cores.
SMALL = dict(rank=4, q_bits=2, iters=1, lplr_iters=1, workers=1)


@pytest.fixture(scope="module")
def venv():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
        py = tmp / "venv" / "bin" / "python"
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            str(REPO / "client" / "python_local")],
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"pip install failed:\n{r.stdout}\n{r.stderr}"
        yield py, tmp


def run(venv, code, **kw):
    """Runs `code` with the venv's interpreter outside the repository; its last
    stdout line is JSON."""
    py, tmp = venv
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MODEL=fixture_model_dir(), TMP=str(tmp))
    prelude = "import json, os, sys\nimport caldera_local as cl\nM = os.environ['MODEL']\n" \
              "T = os.environ['TMP']\n"
    r = subprocess.run([str(py), "-c", prelude + textwrap.dedent(code)], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.splitlines()[-1]), r.stderr


def test_imports_from_site_packages(venv):
    out, _ = run(venv, "print(json.dumps([cl.__file__, cl._native.__file__]))")
    site = str(venv[1] / "venv" / "lib")
    assert all(p.startswith(site) for p in out), out


def test_compress_eval_export_tokenize(venv):
    out, err = run(venv, f"""
        import threading, time
        events, ticks, stop = [], [0], threading.Event()
        def tick():  # runs between callbacks only if compress holds the GIL
            while not stop.is_set():
                ticks[0] += 1
                time.sleep(0.001)
        t = threading.Thread(target=tick); t.start()
        start = time.monotonic()
        r = cl.compress(M, T + "/out", M + "/calibration.safetensors",
                        progress=events.append, finetune_steps=2, **{SMALL!r})
        elapsed = time.monotonic() - start
        stop.set(); t.join()
        e = cl.eval(T + "/out", M + "/eval.safetensors", baseline_model=M, progress=False)
        x = cl.export(T + "/out", T + "/hf", format="hf", progress=True)
        open(T + "/t.txt", "w").write("Once upon a time there was a little dog. " * 40)
        k = cl.tokenize(M, T + "/t.txt", T + "/t.safetensors", seq_len=16, samples=3)
        text = cl.decode(M, T + "/t.safetensors")
        calib = cl.prepare_calibration(M, T + "/t.txt", T + "/job-out", seq_len=16)
        m = r.matrices[0]
        print(json.dumps(dict(
            state=r.state.name, type=type(r).__name__, bits=r.bits_per_param,
            err=r.rms_weighted_relative_error, n=len(r.matrices), m_type=type(m).__name__,
            m_err=m.weighted_relative_error, m_bits=m.bits_per_param, m_rank=m.rank,
            report=os.path.exists(r.report_path), last=[events[-1].done, events[-1].total],
            monotone=all(a.done <= b.done for a, b in zip(events, events[1:])),
            ticks=ticks[0], elapsed=elapsed, n_events=len(events), ppl=e.perplexity,
            base=e.baseline.perplexity, ratio=e.ratio,
            windows=e.windows, hf=x.model, hf_config=os.path.exists(x.model + "/config.json"),
            tok=[k.samples, k.seq_len, k.tokenizer_file], text=text[:40], calib=calib,
            calib_exists=os.path.exists(calib),
            ft=[[type(b).__name__, b.layer, b.holdout_after <= b.holdout_before]
                for b in r.finetune])))
    """)
    assert out["state"] == "SUCCEEDED" and out["type"] == "CompressResult"
    assert out["n"] == 35 and out["m_type"] == "MatrixResult" and out["m_rank"] == 4
    assert 2.0 < out["bits"] < 4.0 and 0 < out["err"] < 1 and 0 < out["m_err"] < 1
    assert out["report"]
    # finetune_steps: one FinetuneBlock per block, none worse on the held-out sequences
    assert out["ft"] == [["FinetuneBlock", layer, True] for layer in range(5)]
    # every task counted by the end, in order; the GIL was free while the job ran
    assert out["last"][0] == out["last"][1] > 35 and out["monotone"]
    # Holding the GIL, compress would let the ticking thread run only at its callbacks
    # and its 0.1 s polls: about elapsed / 0.1 + events ticks; released, it ticks freely.
    assert out["ticks"] > 3 * (out["elapsed"] / 0.1 + out["n_events"]), out
    # a 2-bit model is worse than the original, but not absurdly
    assert out["base"] < out["ppl"] < 10 * out["base"] and out["ratio"] > 1
    assert out["windows"] > 0
    assert out["hf_config"] and out["hf"].endswith("/hf")
    assert out["tok"][:2] == [3, 16] and out["tok"][2].endswith("tokenizer_vocab.json")
    assert out["text"].startswith("Once upon a time")
    # --calibration-text's file goes beside the output
    assert out["calib"].endswith("/job-out.calibration.safetensors") and out["calib_exists"]
    # progress=True without tqdm installed: plain lines on stderr
    assert "export: 5/5" in err


def test_errors_carry_the_messages(venv):
    out, _ = run(venv, """
        def catch(f):
            try:
                f()
            except cl.CalderaError as e:
                return [type(e).__name__, e.code, str(e), isinstance(e, ValueError)]
            return None
        print(json.dumps(dict(
            rank=catch(lambda: cl.compress(M, T + "/bad", M + "/calibration.safetensors",
                                           rank=100000, progress=False)),
            method=catch(lambda: cl.compress(M, T + "/bad", M + "/calibration.safetensors",
                                             method="nope", progress=False)),
            missing=catch(lambda: cl.eval(T + "/no-such-model", M + "/eval.safetensors")),
            seq=catch(lambda: cl.tokenize(M, M + "/config.json", T + "/x.safetensors", 1)))))
    """)
    assert out["rank"][0] == "InvalidJobError" and out["rank"][1] == "INVALID_ARGUMENT"
    assert "--rank" in out["rank"][2] and out["rank"][3]
    assert out["method"][0] == "InvalidJobError" and "--method nope" in out["method"][2]
    assert out["missing"][0] in ("JobNotFoundError", "InvalidJobError"), out["missing"]
    assert "no-such-model" in out["missing"][2]
    assert out["seq"][0] == "InvalidJobError" and "--seq-len" in out["seq"][2]


def test_ctrl_c_cancels_the_job(venv):
    out, _ = run(venv, """
        import signal
        seen = []
        def on_progress(e):  # SIGINT once the first task is done
            if e.done >= 1 and not seen:
                seen.append(e)
                os.kill(os.getpid(), signal.SIGINT)
        try:
            cl.compress(M, T + "/cancelled", M + "/calibration.safetensors", rank=4, iters=1,
                        lplr_iters=1, workers=1, progress=on_progress)
            raised = None
        except KeyboardInterrupt:
            raised = "KeyboardInterrupt"
        left = sorted(os.listdir(T + "/cancelled")) if os.path.isdir(T + "/cancelled") else []
        scratch = T + "/cancelled/.caldera-scratch"
        jobs = os.listdir(scratch) if os.path.isdir(scratch) else []
        print(json.dumps(dict(raised=raised, left=left, jobs=jobs)))
    """)
    assert out["raised"] == "KeyboardInterrupt"
    assert "report.json" not in out["left"] and "model.safetensors.index.json" not in out["left"]
    assert out["jobs"] == [], out  # the cancelled job's scratch is removed
