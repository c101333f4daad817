"""Schemathesis over the bridge's own /openapi.json, against uvicorn on loopback and a real traded ledger: no request
it can build gets a server error, and every 2xx answer matches the documented schema."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import BRIDGE_TOKEN as TOKEN
from tests.conftest import serve_bridge

CASES: Counter[str] = Counter()
EXAMPLES_PER_OPERATION = 80


@pytest.fixture(scope="module")
def api_schema(traded, tmp_path_factory):
    results = tmp_path_factory.mktemp("fuzz") / "RESULTS"
    shutil.copytree(traded, results)
    with serve_bridge(results) as base:
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")


def test_no_request_gets_a_server_error(api_schema) -> None:
    operations = [r.ok() for r in api_schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            if isinstance(case.body, dict) and isinstance(case.body.get("wait_s", 0), int | float):
                case.body["wait_s"] = 0.05  # no engine runs here: don't wait (by default 5 s) for its ack
            response = case.call(headers={"Authorization": f"Bearer {TOKEN.value}"})
            CASES[case.operation.label] += 1
            assert response.status_code < 500, (case.operation.label, response.status_code, response.text[:300])
            if 200 <= response.status_code < 300:
                case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])

        check()
    assert sum(CASES.values()) >= 500, CASES
    assert len(CASES) == len(operations) >= 13, sorted(CASES)
