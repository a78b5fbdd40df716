"""Resume: a rerun redoes exactly what changed, and a SIGKILLed driver loses nothing.

Real runs on a synthetic sample, asserting on the files (sha256, mtimes) and on
the event rows (which run wrote each). The kill test SIGKILLs a real
`rasterflow run` process twice, at different moments, checks that a concurrent
run is refused while it holds the lock, and that the rerun ends the Parsl
processes it left (interchange and worker pool) and finishes with files
byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pyogrio
import pytest
from click.testing import CliRunner

from rasterflow.rasterize_core.tiles import Tile
from rasterflow.workflow import resume as resume_module
from rasterflow.workflow.cli import main
from rasterflow.workflow.config import load_config
from rasterflow.workflow.layout import geotiff_path, journal_path
from rasterflow.workflow.records.parts import committed_parts, part_rows
from rasterflow.workflow.run import run_workflow
from rasterflow.workflow.steps import Step
from tests.helpers.processes import alive, end_processes, processes_under
from tests.helpers.samples import staged_sample

# A real driver, with one tile per batch, that stops right after it first journals rows of
# the step named in HOLD_AFTER: the kill lands there however fast the run goes (a fast
# machine once finished the whole run before the test could see its first rows).
DRIVER = """
import os, time
import rasterflow.workflow.plan as plan
from rasterflow.workflow.records.parts import PartWriter, committed_parts

plan.MAX_BATCH_TILES = 1
flush = PartWriter.flush

def flush_then_hold(self):
    flush(self)
    if any(part.name == os.environ["HOLD_AFTER"] for part in committed_parts(self.folder)):
        time.sleep(3600)  # until the test's SIGKILL

PartWriter.flush = flush_then_hold
from rasterflow.workflow.cli import main
main()
"""
RASTERFLOW = str(Path(sys.executable).with_name("rasterflow"))


# -- helpers ---------------------------------------------------------------------
def output_files(config) -> list[Path]:
    """The tiles: GeoTIFFs and web tiles (not the quick-looks and pages beside them)."""
    tifs = Path(config.dir_geotiff).rglob("*.tif")
    webs = [Path(config.dir_web_tiles, name, config.tms_id) for name in config.stat_names]
    return sorted([*tifs, *(png for web in webs for png in web.rglob("*.png"))])


def digests(config) -> dict[str, str]:
    root = Path(config.dir_geotiff).parent
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in output_files(config)
    }


def mtimes(config) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in output_files(config)}


def events(config) -> pd.DataFrame:
    return pd.read_csv(config.filename_rasterization_events)


def rows_of_run(config, run_id: str) -> set[tuple]:
    frame = events(config)
    frame = frame[frame["run_id"] == run_id]
    return set(zip(frame["step"], frame["z"], frame["x"], frame["y"], strict=True))


def temp_files(config) -> list[Path]:
    roots = [
        Path(config.dir_geotiff),
        Path(config.dir_web_tiles),
        Path(config.filename_rasterization_events).parent,
    ]
    return [path for root in roots for path in root.rglob("*.tmp")]


def check_records(config) -> pd.DataFrame:
    """One row per (step, z, x, y) and per (stat, z, x, y), in CSV and Parquet alike."""
    frame = events(config)
    assert not frame.duplicated(["step", "z", "x", "y"]).any()
    parquet = pd.read_parquet(Path(config.filename_rasterization_events).with_suffix(".parquet"))
    assert len(parquet) == len(frame)
    summary = pd.read_csv(config.filename_rasters_summary)
    assert not summary.duplicated(["stat", "z", "x", "y"]).any()
    return frame


def wait_for(condition, process: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"the driver ended (rc {process.returncode}) before the kill"
        assert time.time() < end, "timed out waiting for the driver"
        time.sleep(0.01)


def journal_rows(config, step: str) -> int:
    """Event rows of `step` in the journal parts the driver has committed so far."""
    parts = [p for p in committed_parts(journal_path(config)) if p.kind == "e" and p.name == step]
    try:
        return sum(part_rows(part.path) for part in parts)
    except OSError:  # folded into the files at the run's end meanwhile
        return 0


# -- reruns ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A finished run, the sha256 of every file it wrote (the uninterrupted reference), and a
    pristine copy of its input (the tests below change the sample's)."""
    sample = staged_sample(tmp_path_factory.mktemp("resume"))
    pristine = tmp_path_factory.mktemp("pristine")
    shutil.copytree(sample.root / "staged", pristine / "staged")
    shutil.copy(sample.config_path, pristine / "config.json")
    config = load_config(sample.config_path)
    assert run_workflow(config, live_progress=False).exit_code == 0
    return sample, digests(config), pristine


def copy_sample(pristine: Path, root: Path) -> Path:
    """The pristine input under `root`, with a config writing there; returns the config path."""
    shutil.copytree(pristine / "staged", root / "staged")
    data = json.loads((pristine / "config.json").read_text())
    for key, value in data.items():
        if key.startswith(("dir_", "filename_")):
            data[key] = str(root / Path(value).name)
    (root / "config.json").write_text(json.dumps(data))
    return root / "config.json"


def rerun(config_path: Path, **options):
    config = load_config(config_path)
    before = mtimes(config)
    report = run_workflow(config, live_progress=False, **options)
    assert report.exit_code == 0
    after = mtimes(config)
    rewritten = {path for path in after if before.get(path) != after[path]}
    return config, rows_of_run(config, report.run_id), rewritten


def files_of(config, tile: Tile) -> set[Path]:
    name = f"{tile.z}/{tile.x}/{tile.y}"
    return {path for path in output_files(config) if name in str(path.with_suffix(""))}


def test_deleted_parent_alone_is_rebuilt(done):
    """The rerun skips every ok tile but the deleted parent, and its web tiles."""
    sample, reference, _ = done
    config = load_config(sample.config_path)
    parent = sample.tiles[0].parent()
    geotiff_path(config, parent).unlink()
    config, redone, rewritten = rerun(sample.config_path)
    assert redone == {("parent", *parent), ("webtile", *parent)}
    assert rewritten == files_of(config, parent) and len(rewritten) == 1 + len(config.statistics)
    assert digests(config) == reference  # same bytes again
    check_records(config)


def test_new_palette_redoes_only_web_tiles(done):
    sample, reference, _ = done
    data = json.loads(sample.config_path.read_text())
    data["statistics"][1]["palette"] = ["#000000", "#ff0000"]
    sample.config_path.write_text(json.dumps(data))
    config, redone, rewritten = rerun(sample.config_path)
    frame = events(config)
    assert redone == {
        ("webtile", *key) for key in zip(frame["z"], frame["x"], frame["y"], strict=True)
    }
    assert rewritten == {path for path in output_files(config) if path.suffix == ".png"}
    now = digests(config)
    changed = {name for name in now if now[name] != reference[name]}
    assert changed and all("/iwp_coverage/" in f"/{name}" for name in changed)


def test_new_parent_version_redoes_parents_and_their_web_tiles(done, tmp_path, monkeypatch):
    """An upgrade that changes what the parent step writes (it bumps that step's output
    version): the rerun rebuilds every parent and redraws its web tiles, and keeps every
    z-max GeoTIFF and web tile."""
    _, reference, pristine = done
    config_path = copy_sample(pristine, tmp_path)  # its rows are left with the new version
    assert run_workflow(load_config(config_path), live_progress=False).exit_code == 0
    versions = {**resume_module.OUTPUT_VERSIONS, Step.PARENT: 2}
    monkeypatch.setattr(resume_module, "OUTPUT_VERSIONS", versions)
    config, redone, rewritten = rerun(config_path)
    frame = events(config)
    parents = frame[frame["z"] < frame["z"].max()]
    keys = set(zip(parents["z"], parents["x"], parents["y"], strict=True))
    assert redone == {(step, *key) for key in keys for step in ("parent", "webtile")}
    assert rewritten == set().union(*(files_of(config, Tile(*key)) for key in keys))
    assert digests(config) == reference  # the same code: the same bytes


def test_changed_staged_file_redoes_its_tile_and_parents(done):
    sample, reference, _ = done
    tile = sample.tiles[0]
    config = load_config(sample.config_path)
    source = Path(config.dir_staged, config.tms_id, f"{tile.z}/{tile.x}/{tile.y}.gpkg")
    frame = pyogrio.read_dataframe(source)
    source.unlink()
    pyogrio.write_dataframe(frame.iloc[1:], source, layer=source.stem)  # one polygon fewer
    config, redone, rewritten = rerun(sample.config_path)
    lineage = [tile, tile.parent(), tile.parent().parent()]
    assert redone == {("rasterize", *tile), ("parent", *lineage[1]), ("parent", *lineage[2])} | {
        ("webtile", *t) for t in lineage
    }
    assert rewritten == set().union(*(files_of(config, t) for t in lineage))
    now = digests(config)
    assert all(now[f"geotiff/{config.tms_id}/{t.z}/{t.x}/{t.y}.tif"] != reference[
        f"geotiff/{config.tms_id}/{t.z}/{t.x}/{t.y}.tif"] for t in lineage)  # fmt: skip


def test_overwrite_redoes_everything(done):
    sample = done[0]
    config = load_config(sample.config_path)
    before, stamps = digests(config), mtimes(config)
    result = CliRunner().invoke(main, ["run", "--overwrite", str(sample.config_path)])
    assert result.exit_code == 0, result.output
    frame = check_records(config)
    assert frame["run_id"].nunique() == 1 and (frame["status"] == "ok").all()
    assert all(path.stat().st_mtime_ns != stamp for path, stamp in stamps.items())
    assert digests(config) == before


# -- SIGKILL ----------------------------------------------------------------------
def test_sigkilled_driver_resumes_to_identical_files(done, tmp_path):
    _, reference, pristine = done
    config_path = copy_sample(pristine, tmp_path)
    config = load_config(config_path)
    lock_path = Path(f"{config.filename_rasterization_events}.lock")
    started: list[int] = []
    try:
        # 1. Kill once the first rows reach the journal; meanwhile a second run is refused.
        first = start_driver(config_path, started, hold_after="rasterize")
        wait_for(lambda: lock_path.exists() and "parsl_run_dir" in lock_path.read_text(), first)
        second = subprocess.run([RASTERFLOW, "run", str(config_path)],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode == 2
        assert f"pid {first.pid}" in second.stderr and os.uname().nodename in second.stderr
        assert str(lock_path) in second.stderr
        wait_for(lambda: journal_rows(config, "rasterize") > 0, first)
        orphans = kill_driver(first, lock_path)

        # 2. Rerun: it takes the stale lock over, ends the orphans; kill it once parents appear.
        parents_before = journal_rows(config, "parent")
        resumed = start_driver(config_path, started, hold_after="parent")
        wait_for(lambda: journal_rows(config, "parent") > parents_before, resumed)
        assert not any(alive(pid) for pid in orphans), "the rerun left the killed run's processes"
        kill_driver(resumed, lock_path)
        assert not Path(config.filename_rasterization_events).exists()  # cut before its end

        # 3. Run to the end: every file as an uninterrupted run made it, records whole.
        assert run_workflow(config, live_progress=False).exit_code == 0
        assert digests(config) == reference
        frame = check_records(config)
        assert (frame["status"] == "ok").all() and frame["run_id"].nunique() >= 2
        assert len(frame) == 2 * sum(name.endswith(".tif") for name in reference)
        assert temp_files(config) == []
        assert not lock_path.exists()
        assert not journal_path(config).exists()
        assert processes_under(tmp_path) == []
    finally:
        end_processes([p.pid for p in processes_under(tmp_path)] + started)


def start_driver(config_path: Path, started: list[int], hold_after: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", DRIVER, "run", str(config_path)],
                               env={**os.environ, "HOLD_AFTER": hold_after},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    started.append(process.pid)
    return process


def kill_driver(process: subprocess.Popen, lock_path: Path) -> list[int]:
    """SIGKILL the driver; return the pids of the Parsl processes it leaves running."""
    process.send_signal(signal.SIGKILL)
    process.wait()
    holder = json.loads(lock_path.read_text())  # left behind, naming the dead driver
    assert holder["pid"] == process.pid
    left = processes_under(Path(holder["parsl_run_dir"]))
    if alive(holder["interchange_pid"]):
        left.append(psutil.Process(holder["interchange_pid"]))
    assert left, "expected the killed driver's interchange and worker pool still running"
    return sorted({p.pid for parent in left for p in [parent, *parent.children(recursive=True)]})
