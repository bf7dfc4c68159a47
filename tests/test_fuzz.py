"""The HTTP API fuzzed from its own OpenAPI schema with schemathesis (bounded examples): never a 500.

A real `lorag serve` on loopback without models: every route parses, validates and authorises what it is sent,
then the model routes answer 503 (no model loaded) rather than generating, which keeps the run to a minute.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import free_port
from tests.test_cli import _wait_ready, lorag_env

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 50  # per operation: bounded, under a minute in all


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    home = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    env = lorag_env(home, LORAG_SERVER__LOAD_MODELS="false", LORAG_SERVER__RATE_PER_MINUTE="100000",
                    LORAG_FINETUNE__IN_PROCESS="false")
    server = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=home,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_ready(f"{base}/healthz", server) == 200
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
        assert "Traceback" not in output, output[-3000:]  # nothing failed unseen on the server either


def test_no_request_makes_the_server_fail(api_schema: schemathesis.BaseSchema) -> None:
    # Operation by operation with hypothesis directly: schemathesis' pytest plugin does not run under pytest 9.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        if operation.path == "/slack/events":
            continue  # Slack's own signed protocol, off without a signing secret: tests/test_slack.py

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call(timeout=60)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500 or response.status_code == 503, \
                f"{where} → {response.status_code}: {response.text[:500]}"
            kind = response.headers.get("content-type") or [""]  # schemathesis keeps every value of a header
            enveloped = case.path != "/readyz"  # a readiness report, by design, not an error
            if enveloped and response.status_code >= 400 and kind[0].startswith("application/json"):
                assert response.json().get("error", {}).get("message"), f"{where}: no error envelope: {response.text}"

        call()
