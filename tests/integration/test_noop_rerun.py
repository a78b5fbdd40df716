"""A rerun with nothing to do decides so before Parsl starts: it never loads Parsl, sends no
task, rewrites no file, and reports the run's tiles as up to date."""

from __future__ import annotations

import pandas as pd

from rasterflow.workflow import run as run_module
from rasterflow.workflow.config import load_config
from rasterflow.workflow.parsl_session import ParslSession
from rasterflow.workflow.run import run_workflow
from tests.helpers.files import file_digests
from tests.helpers.paths import THREADS_SITE


def test_a_rerun_with_nothing_to_do_starts_no_parsl(demo_copy, monkeypatch):
    config = load_config(demo_copy)
    root = demo_copy.parent
    before = {pattern: file_digests(root, pattern) for pattern in ("*.tif", "*.png")}
    events = pd.read_csv(config.filename_rasterization_events)

    def refuse(*args, **kwargs):
        raise AssertionError("Parsl was started for a rerun with nothing to do")

    monkeypatch.setattr(ParslSession, "start", refuse)
    monkeypatch.setattr(run_module, "ParslApps", refuse)
    report = run_workflow(config, site=THREADS_SITE, live_progress=False)
    assert report.exit_code == 0 and set(report.done.values()) == {0}
    assert report.ok == {step: int((events["step"] == step).sum()) for step in report.ok}
    assert {pattern: file_digests(root, pattern) for pattern in ("*.tif", "*.png")} == before
    assert pd.read_csv(config.filename_rasterization_events).equals(events)
