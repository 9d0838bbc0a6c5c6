"""Official SDK clients against real upstreams, DIRECT and THROUGH mcpgate.

py_client.py (PyPI mcp 2.3.0, auto and legacy modes) and ts_client.mjs (npm sdk 1.32.2)
must give the same concrete results either way.
"""

from __future__ import annotations

import json

import harness
import pytest
from conftest import run_json

UPSTREAMS = ["reference", "everything", "demo"]
ROUTES = ["direct", "mcpgate"]
ECHO = "hello through mcpgate"

EXPECT = {
    "reference": {
        "tools": {"test_simple_text", "test_tool_with_progress", "test_sampling", "test_elicitation"},
        "simple": ("test_simple_text", "This is a simple text response for testing."),
        "progress": ("test_tool_with_progress", [0, 50, 100]),
        "sampling": "test_sampling",
        "elicitation": "test_elicitation",
        "modern": True,
        "get_stream": True,
    },
    "everything": {
        "tools": {"echo", "get-env", "trigger-long-running-operation", "trigger-sampling-request"},
        "simple": ("echo", f"Echo: {ECHO}"),
        "progress": ("trigger-long-running-operation", [1, 2, 3]),
        "sampling": "trigger-sampling-request",
        "elicitation": "trigger-elicitation-request",
        "modern": False,
        "get_stream": True,
    },
    "demo": {
        "tools": {"echo", "payload", "progress", "sample", "get-env"},
        "simple": ("echo", ECHO),
        "progress": ("progress", [1, 2, 3]),
        "sampling": "sample",
        "elicitation": None,
        "modern": True,
        "get_stream": None,  # not asserted
    },
}


def check_common(data: dict, upstream: str, sampled: str) -> None:
    exp = EXPECT[upstream]
    assert data.get("ok"), json.dumps(data, indent=2)[:4000]
    assert exp["tools"] <= set(data["tools"]), data["tools"]
    tool, text = exp["simple"]
    assert data["simple"] == {"tool": tool, "text": [text], "is_error": False}
    tool, values = exp["progress"]
    assert data["progress"]["tool"] == tool
    assert data["progress"]["notifications"] == len(values) > 0
    assert [round(v) for v in data["progress"]["values"]] == values
    assert data["sampling"]["tool"] == exp["sampling"]
    assert data["sampling"]["callback_calls"] == 1
    assert any(sampled in t for t in data["sampling"]["text"]), data["sampling"]
    if exp["elicitation"]:
        assert data["elicitation"]["tool"] == exp["elicitation"]
        assert data["elicitation"]["callback_calls"] == 1
    else:
        assert "elicitation" not in data


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_py_client(mode, upstream, route, url_for):
    url = url_for(upstream, route)
    rc, data, err = run_json([harness.VENV_PY, harness.CLIENTS / "py_client.py", url, "--mode", mode])
    print(json.dumps(data)[:2000])
    assert rc == 0, f"rc={rc} {data.get('errors')} {err[-2000:]}"
    check_common(data, upstream, "sampled-by-py-client")
    modern = mode == "auto" and EXPECT[upstream]["modern"]
    assert data["protocol_version"] == ("2026-07-28" if modern else "2025-11-25")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_ts_client(upstream, route, url_for):
    url = url_for(upstream, route)
    rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_client.mjs", url])
    print(json.dumps(data)[:2000])
    assert rc == 0, f"rc={rc} {data.get('errors')} {err[-2000:]}"
    check_common(data, upstream, "sampled-by-ts-client")
    assert data["protocol_version"] == "2025-11-25"
    assert data["session_id"], "upstreams here assign a session on initialize"
    assert data["delete_status"] in (200, 202, 204, 405)
    assert data["session_after_delete"] is None
    if EXPECT[upstream]["get_stream"]:
        assert data["get_stream"] == {"status": 200, "opened": True}


# mcpgate speaking HTTP/2 (h2c) to its upstream: only the demo upstream speaks it.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_py_client_through_an_http2_upstream(mode, url_for):
    rc, data, err = run_json([harness.VENV_PY, harness.CLIENTS / "py_client.py", url_for("demo", "mcpgate-h2"),
                              "--mode", mode])
    print(json.dumps(data)[:2000])
    assert rc == 0, f"rc={rc} {data.get('errors')} {err[-2000:]}"
    check_common(data, "demo", "sampled-by-py-client")
    assert data["protocol_version"] == ("2026-07-28" if mode == "auto" else "2025-11-25")


def test_ts_client_through_an_http2_upstream(url_for):
    rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_client.mjs", url_for("demo", "mcpgate-h2")])
    print(json.dumps(data)[:2000])
    assert rc == 0, f"rc={rc} {data.get('errors')} {err[-2000:]}"
    check_common(data, "demo", "sampled-by-ts-client")
    assert data["protocol_version"] == "2025-11-25"
    assert data["session_id"]
    assert data["session_after_delete"] is None
    assert data["get_stream"] == {"status": 200, "opened": True}
