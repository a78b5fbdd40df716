"""The warm pool's two contracts with Parsl: its launch command is Parsl's own with the
script replaced, and Parsl's pool takes its process context from the one name it swaps."""

from __future__ import annotations

import ast
import importlib.util
import shlex
import sys
from pathlib import Path

from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

from rasterflow.executors import warm_pool
from rasterflow.executors.parsl_configs import parsl_config
from rasterflow.executors.sites import load_site


def test_launch_command_is_parsls_with_this_module_in_front():
    command = warm_pool.launch_command("/venv/bin/python", ["a.b", "c"], DEFAULT_LAUNCH_CMD)
    words = shlex.split(command.replace("{", "").replace("}", ""))
    assert words[:4] == ["/venv/bin/python", "-m", warm_pool.__name__, "--preload=a.b,c"]
    assert command.endswith(DEFAULT_LAUNCH_CMD.partition(" ")[2])


def test_local_site_uses_it_only_with_modules_to_preload(tmp_path):
    site = load_site("local")
    (warm,) = parsl_config(site, tmp_path, worker_preload=["x.y"]).executors
    (plain,) = parsl_config(site, tmp_path).executors
    assert warm.launch_cmd.startswith(f"{sys.executable} -m {warm_pool.__name__} --preload=x.y ")
    assert plain.launch_cmd.startswith("process_worker_pool.py ")


def test_parsls_pool_reads_its_context_from_parsl_multiprocessing():
    """`main` swaps `parsl.multiprocessing.SpawnContext` before the pool module runs: the
    pool must import that name (and use no other way to start processes)."""
    import parsl.multiprocessing

    assert hasattr(parsl.multiprocessing, "SpawnContext")
    source = Path(importlib.util.find_spec(warm_pool.POOL_MODULE).origin).read_text()
    imports = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]
    names = [[a.name for a in node.names] for node in imports
             if node.module == "parsl.multiprocessing"]  # fmt: skip
    assert names == [["SpawnContext"]]
    assert "multiprocessing.Process(" not in source and "get_context(" not in source
