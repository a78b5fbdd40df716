"""Synthetic samples and shared runs over them."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rasterflow.workflow.config import RasterflowConfig, load_config
from rasterflow.workflow.demo.synthetic import SyntheticSample, make_sample
from rasterflow.workflow.products import publish
from rasterflow.workflow.report.plan import PlanReport, plan_report
from rasterflow.workflow.run import RunReport, run_workflow

RESUME_SAMPLE = {"z_range": (11, 13), "tiles": (3, 2), "cells_per_tile": 10, "seed": 3}


def staged_sample(root: Path):
    """The synthetic sample with fixed value ranges: a level's ranges then do not depend on
    its summaries, so a changed tile redoes only its own web tiles (a changed range would
    rightly redo the whole level's)."""
    sample = make_sample(root, **RESUME_SAMPLE)
    data = json.loads(sample.config_path.read_text())
    for stat in data["statistics"]:
        stat["val_range"] = [0, 1] if stat["property"] == "area_per_pixel_area" else [0, 30]
    sample.config_path.write_text(json.dumps(data))
    return sample


@dataclass(frozen=True)
class DemoRun:
    """The demo's sample run once: what it staged, its config, the run's report, and the
    plan `rasterflow plan` gave before the run."""

    sample: SyntheticSample
    config: RasterflowConfig
    report: RunReport
    plan_before: PlanReport


def run_demo_sample(root: Path, site: str) -> DemoRun:
    """make_sample's defaults (6 z13 tiles, z13 to z9) with `cog: true`, run on `site` and
    its products published (map page, WMTS, quick-looks)."""
    sample = make_sample(root)
    raw = json.loads(sample.config_path.read_text())
    sample.config_path.write_text(json.dumps({**raw, "cog": True}, indent=2))
    config = load_config(sample.config_path)
    before = plan_report(config)
    report = run_workflow(config, site=site, live_progress=False)
    assert report.exit_code == 0, report.failures
    publish(config, report)
    return DemoRun(sample, config, report, before)


def copy_run(source: Path, root: Path) -> Path:
    """A run's folder copied under `root` (mtimes kept), its config pointing at the copy;
    returns the copy's config path. For tests that change what a shared run wrote."""
    shutil.copytree(source, root, dirs_exist_ok=True)
    data = json.loads((root / "config.json").read_text())
    for key, value in data.items():
        if key.startswith(("dir_", "filename_")) and str(value).startswith(str(source)):
            data[key] = str(root) + str(value)[len(str(source)) :]
    (root / "config.json").write_text(json.dumps(data, indent=2))
    return root / "config.json"
