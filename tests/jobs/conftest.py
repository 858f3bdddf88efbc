from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def jvm() -> Any:
    """The py4j JVM view, with livefit's adapter classes loaded."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    from livefit.jars import job_jars

    add_jars_to_context_class_loader([p.as_uri() for p in job_jars()])
    return get_gateway().jvm
