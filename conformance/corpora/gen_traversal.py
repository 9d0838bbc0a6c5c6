#!/usr/bin/env python3
"""Generates traversal_generated.jsonl from the seeds in traversal_hand.jsonl.

Every "../" of a seed is re-spelled by one encoder at a time (percent, double
and triple encoding, overlong UTF-8, IIS %u, full-width and other look-alikes,
backslashes, trailing dots/spaces, path parameters, NUL, filter-bypass
forms). The delivery channel ("via") rotates so that every channel sees every
kind of encoding. Run it after editing the seeds; the output is committed and
conformance/tests/test_guard_corpora.py checks that it is up to date.

    python3 conformance/corpora/gen_traversal.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "traversal_hand.jsonl"
OUT = HERE / "traversal_generated.jsonl"

# (name, replacement for one "../", what it tests)
ENCODERS: list[tuple[str, str, str]] = [
    ("pct-lower", "%2e%2e%2f", "percent-encoded dots and slash"),
    ("pct-upper", "%2E%2E%2F", "upper-case percent encoding"),
    ("pct-dots", "%2e%2e/", "percent-encoded dots, raw slash"),
    ("pct-slash", "..%2f", "raw dots, percent-encoded slash"),
    ("double", "%252e%252e%252f", "double percent-encoding"),
    ("triple", "%25252e%25252e%25252f", "triple percent-encoding"),
    ("nested", "%%32%65%%32%65%%32%66", "nested encoding (%%32%65 -> %2e)"),
    ("overlong2", "%c0%ae%c0%ae%c0%af", "two-byte overlong UTF-8"),
    ("overlong3", "%e0%80%ae%e0%80%ae/", "three-byte overlong UTF-8 dots"),
    ("overlong-slash", "..%c0%af", "overlong UTF-8 slash"),
    ("overlong-bslash", "..%c1%9c", "overlong UTF-8 backslash"),
    ("iis-u", "%u002e%u002e%u2215", "IIS %u encoding with division slash"),
    ("iis-u-fullwidth", "%uff0e%uff0e%u002f", "IIS %u encoding of full-width dots"),
    ("fullwidth", "\uff0e\uff0e\uff0f", "full-width dots and solidus"),
    ("fullwidth-bslash", "\uff0e\uff0e\uff3c", "full-width dots and reverse solidus"),
    ("fullwidth-pct", "\uff05\uff12\uff45\uff05\uff12\uff45/", "full-width percent encoding"),
    ("utf8-fullwidth", "%ef%bc%8e%ef%bc%8e%ef%bc%8f", "UTF-8 percent-encoding of full-width forms"),
    ("one-dot-leader", "\u2024\u2024/", "one-dot leader U+2024"),
    ("two-dot-leader", "\u2025/", "two-dot leader U+2025"),
    ("division-slash", "..\u2215", "division slash U+2215"),
    ("backslash", "..\\", "backslash separator"),
    ("pct-backslash", "..%5c", "percent-encoded backslash"),
    ("double-backslash", "%252e%252e%255c", "double-encoded backslash"),
    ("mixed-sep", "..\\/", "mixed backslash and slash"),
    ("trailing-space", ".. /", "trailing space after the dots"),
    ("trailing-dots", "..../", "extra trailing dots"),
    ("path-param", "..;/", "path parameter after the dots"),
    ("nul-suffix", "..%00/", "NUL after the dots"),
    ("zero-width", ".\u200b./", "zero-width space between the dots"),
    ("strip-bypass", "....//", "survives naive removal of ../"),
]

VIAS = [
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "mcp-name",
    "completion",
    "completion-value",
    "tool-pointer",
    "tool-pointer-array",
    "tool-heuristic",
]

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def heuristic_eligible(payload: str) -> bool:
    """Mirrors the path heuristic: bare or file: strings with a separator or %."""
    m = SCHEME.match(payload)
    if m and m.group(0).lower() != "file:":
        return False
    return any(c in payload for c in "/\\%") or payload.startswith("~")


def generate() -> list[dict]:
    seeds = [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]
    seeds = [s for s in seeds if s.get("seed")]
    out = []
    k = 0
    for seed in seeds:
        for name, repl, what in ENCODERS:
            payload = seed["payload"].replace("../", repl)
            via = VIAS[k % len(VIAS)]
            k += 1
            if via == "tool-heuristic" and not heuristic_eligible(payload):
                via = "tool-pointer"
            out.append({"payload": payload, "via": via, "reason": f"{what} ({name}) of: {seed['reason']}"})
    return out


def render(cases: list[dict]) -> str:
    return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases)


if __name__ == "__main__":
    text = render(generate())
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {len(text.splitlines())} cases to {OUT.name}")
