"""Globus Compute without the service: the endpoint templates of the docs, an engine built from
one as the endpoint builds it, and the payloads the SDK's Client would send."""

from __future__ import annotations

import re
import textwrap
import uuid

import pytest

from rasterflow.executors.globus import serializer
from rasterflow.workflow.submit import remote_run

from .paths import REPO

ENDPOINT_ID = "5b4f4c0e-7a52-4d5e-9a8f-3c2d1e0f9a11"


def endpoint_template(name: str) -> str:
    """The YAML block marked `rasterflow-endpoint-template: NAME` in the docs."""
    marker = f"<!-- rasterflow-endpoint-template: {name} -->"
    for doc in (REPO / "docs" / "remote.md", REPO / "README.md"):
        text = doc.read_text() if doc.exists() else ""
        if marker in text:
            block = re.search(r"```yaml\n(.*?)\n[ \t]*```", text.split(marker, 1)[1], re.S)
            return textwrap.dedent(block.group(1)) + "\n"
    pytest.fail(f"no {marker} block in docs/remote.md or README.md")


def build_engine(template: str, **provider_overrides):
    """A GlobusComputeEngine from endpoint-template YAML, loaded as the endpoint loads it."""
    import yaml
    from globus_compute_endpoint.endpoint.config.utils import load_config_yaml

    assert "{{" not in template and "{%" not in template  # plain YAML: renders to itself
    data = yaml.safe_load(template)
    data["engine"]["provider"].update(provider_overrides)
    return load_config_yaml(yaml.safe_dump(data)).engine


def client_side_payloads(arguments: dict) -> tuple[str, str]:
    """(function_code, task payload) exactly as the SDK's Client builds them for `submit`."""
    from globus_compute_sdk.sdk.batch import Batch
    from globus_compute_sdk.sdk.client import FunctionRegistrationData

    ser = serializer()
    function_code = FunctionRegistrationData(function=remote_run, serializer=ser).function_code
    batch = Batch(task_group_id=None, serializer=ser)
    function_id = str(uuid.uuid4())
    batch.add(function_id, args=(), kwargs=arguments)
    return function_code, batch.prepare()["tasks"][function_id][0]
