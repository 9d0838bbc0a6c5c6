#!/usr/bin/env python3
"""Validates evidence/bundle.json against evidence/schema.json (JSON Schema
2020-12, python-jsonschema from the project venv) and checks that every file
the bundle names exists. Exit 1 with every problem listed.

    .cache/venv/bin/python scripts/validate-evidence.py [EVIDENCE_DIR]
"""
import json
import os
import sys

import jsonschema

def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else "evidence"
    schema = json.load(open(os.path.join(root, "schema.json")))
    jsonschema.Draft202012Validator.check_schema(schema)
    path = os.path.join(root, "bundle.json")
    if not os.path.exists(path):
        print(f"{path}: missing (run make evidence)")
        return 1
    bundle = json.load(open(path))
    v = jsonschema.Draft202012Validator(schema)
    errors = sorted(v.iter_errors(bundle), key=lambda e: list(e.absolute_path))
    for e in errors[:50]:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        print(f"{path}: {where}: {e.message[:300]}")
    missing = [p["file"] for p in bundle.get("plots", []) if not os.path.exists(os.path.join(root, p["file"]))]
    for f in missing:
        print(f"{path}: plot {f} missing")
    if not os.path.exists(os.path.join(root, "REPORT.md")):
        print(f"{root}/REPORT.md missing")
        missing.append("REPORT.md")
    if errors or missing:
        print(f"{len(errors)} schema error(s), {len(missing)} missing file(s)")
        return 1
    print(f"{path}: valid against {root}/schema.json "
          f"({len(bundle.get('scenarios', {}))} scenarios, {len(bundle.get('plots', []))} plots)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
