"""Writes spinapp-v1alpha1.schema.json from spin-operator's SpinApp CRD (not run by the tests).

    .venv/bin/python deploy/spinkube/crd_to_schema.py core.spinkube.dev_spinapps.yaml \
        > deploy/spinkube/spinapp-v1alpha1.schema.json

The CRD (spin-operator v0.6.1, tag commit 96c9d1d1d69c2c04e005375c44f323fb10e31002):
https://raw.githubusercontent.com/spinframework/spin-operator/v0.6.1/config/crd/bases/core.spinkube.dev_spinapps.yaml
The schema is its v1alpha1 openAPIV3Schema, unchanged except:
- `additionalProperties: false` on every object that lists `properties` and says nothing about
  additional ones: the API server prunes unknown fields silently (or rejects them with
  `kubectl apply --validate=strict`); here a misspelt field is an error;
- `apiVersion` and `kind` fixed to this CRD's, and apiVersion, kind, metadata, spec required.
"""
import hashlib
import json
import sys

import yaml

CRD_URL = ("https://raw.githubusercontent.com/spinframework/spin-operator/v0.6.1/"
           "config/crd/bases/core.spinkube.dev_spinapps.yaml")


def strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
    return node


def main(path):
    raw = open(path, "rb").read()
    crd = yaml.safe_load(raw)
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == "SpinApp"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"]["const"] = f"{crd['spec']['group']}/v1alpha1"
    schema["properties"]["kind"]["const"] = "SpinApp"
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    out = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": (f"SpinApp {crd['spec']['group']}/v1alpha1 from spin-operator v0.6.1: the openAPIV3Schema of "
                     f"{CRD_URL} (sha256 {hashlib.sha256(raw).hexdigest()}), with additionalProperties false on "
                     "every object with properties, apiVersion/kind fixed, apiVersion/kind/metadata/spec required. "
                     "Made by deploy/spinkube/crd_to_schema.py."),
        **schema,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
