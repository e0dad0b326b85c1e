"""Validates pgfork's responses against Neon's published API v2 schemas.

Usage: neon_conformance.py SPEC.yaml CASES.json
CASES is a list of {"method", "path" (Neon's path template), "status", "body"}.
Prints one line per case; exits 1 when any response breaks its schema.
"""
import json
import sys

import yaml
from openapi_schema_validator import OAS30Validator

spec = yaml.safe_load(open(sys.argv[1]))
cases = json.load(open(sys.argv[2]))


def resolve(node, seen=()):
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return {}
            target = spec
            for part in ref.lstrip("#/").split("/"):
                target = target[part]
            return resolve(target, seen + (ref,))
        return {k: resolve(v, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(x, seen) for x in node]
    return node


failed = 0
for case in cases:
    where = f'{case["method"].upper()} {case["path"]} {case["status"]}'
    op = spec["paths"][case["path"]][case["method"]]
    # YAML reads `200:` as an integer key.
    responses = {str(k): v for k, v in op["responses"].items()}
    response = responses.get(str(case["status"]))
    if response is None:
        print(f"FAIL {where}: Neon documents no such status (it has {sorted(responses)})")
        failed += 1
        continue
    response = resolve(response)
    content = response.get("content", {}).get("application/json")
    if content is None:
        if case["body"] not in (None, "", {}):
            print(f"FAIL {where}: Neon documents no body for it")
            failed += 1
        else:
            print(f"ok   {where} (no body)")
        continue
    schema = resolve(content["schema"])
    errors = sorted(OAS30Validator(schema).iter_errors(case["body"]), key=lambda e: list(e.path))
    if errors:
        failed += 1
        for e in errors[:15]:
            path = "/".join(str(p) for p in e.absolute_path)
            print(f"FAIL {where}: {path}: {e.message[:300]}")
    else:
        print(f"ok   {where}")
sys.exit(1 if failed else 0)
