"""The progress display shared by caldera_client and caldera_local (_common.py): a tqdm
bar when tqdm is importable, plain lines otherwise, the callback form, and the choice
by `progress`."""
import sys
import types

from caldera_client import _common
from caldera_client._common import ProgressEvent, Reporter


class FakeTqdm:
    """Records what a tqdm bar is told."""

    made = []

    def __init__(self, total=None, desc="", **kw):
        self.total, self.desc, self.n, self.postfix, self.written = total, desc, 0, "", []
        self.closed = False
        FakeTqdm.made.append(self)

    def update(self, k):
        self.n += k

    def set_postfix_str(self, s, refresh=True):
        self.postfix = s

    def write(self, s, file=None):
        self.written.append(s)

    def close(self):
        self.closed = True


def test_bar_follows_done_and_total(monkeypatch):
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    FakeTqdm.made.clear()
    with Reporter("compress", True) as r:
        r.progress(1, 41, "calibrate layer 0 done")
        r.progress(7, 41, "decompose layer 0 q_proj done")
        r.note("calibration: at x")
        bar = FakeTqdm.made[0]
        assert (bar.desc, bar.total, bar.n) == ("compress", 41, 7)
        assert bar.postfix == "decompose layer 0 q_proj done"
        assert bar.written == ["calibration: at x"]
    assert bar.closed


def test_plain_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    with Reporter("eval", True) as r:
        r.progress(2, 5, "layer 2/5")
    assert capsys.readouterr().err == "eval: 2/5 layer 2/5\n"


def test_callback_and_quiet_and_auto(monkeypatch, capsys):
    events = []
    with Reporter("wait", events.append) as r:
        r.progress(3, 9, "m")
    assert events == [ProgressEvent(3, 9, "m")]
    with Reporter("wait", False) as r:
        r.progress(3, 9, "m")
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_common, "interactive", lambda: False)
    with Reporter("wait", None) as r:
        r.progress(3, 9, "m")
    monkeypatch.setattr(_common, "interactive", lambda: True)
    with Reporter("wait", None) as r:
        r.progress(4, 9, "m")
    assert capsys.readouterr().err == "wait: 4/9 m\n"
