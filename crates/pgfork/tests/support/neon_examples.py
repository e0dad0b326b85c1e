"""Prints the example responses of Neon's published OpenAPI document as JSON:
{"METHOD /path/template": example}, for the 2xx responses that have one."""
import json
import sys

import yaml

spec = yaml.safe_load(open(sys.argv[1]))


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


out = {}
for path, item in spec["paths"].items():
    for method, op in item.items():
        if method not in ("get", "post", "patch", "delete"):
            continue
        for code, response in op.get("responses", {}).items():
            if not str(code).startswith("2"):
                continue
            content = resolve(response).get("content", {}).get("application/json", {})
            example = content.get("example")
            if example is None and content.get("examples"):
                example = next(iter(content["examples"].values())).get("value")
            if example is not None:
                out[f"{method.upper()} {path}"] = example
json.dump(out, sys.stdout)
