#!/usr/bin/env python3
"""Offline check of the Kubernetes manifests under deploy/ (run by scripts/validate-deploy.sh).

Each YAML document is validated in strict mode (unknown fields are errors) against the
Kubernetes JSON schemas bundled in the PyPI package kubernetes-validate, for every version
in --k8s. A kind without a schema is an error too. Then, because a schema sees one object
at a time, the references between the objects of one directory (plus those in deploy/
itself) are checked: selectors against pod labels, named ports, volumes, ConfigMap and
Secret keys, PDB/HPA targets. Every `*.toml` entry of a ConfigMap must parse as TOML; it
is written out under --out and its path printed, and, when MCPGATE_BIN names an mcpgate
binary, run through `mcpgate check`.

One line per document; exit 1 on any failure.
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class Checker:
    def __init__(self, root: Path, out: Path, versions: list[str]):
        self.root = root
        self.out = out
        self.versions = versions
        self.failures = 0
        self.docs = 0
        self.configs = 0

    def fail(self, where: str, msg: str) -> None:
        self.failures += 1
        print(f"FAIL {where}: {msg}")

    def rel(self, p: Path) -> str:
        return os.path.relpath(p, Path.cwd())

    # --- schemas --------------------------------------------------------------------------

    def load(self, path: Path) -> list[tuple[str, dict]]:
        try:
            raw = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as e:
            self.fail(self.rel(path), f"not YAML: {e}")
            return []
        docs: list[tuple[str, dict]] = []
        before = self.failures
        for i, doc in enumerate(d for d in raw if d is not None):
            where = f"{self.rel(path)}[{i}]"
            if not isinstance(doc, dict) or not all(k in doc for k in ("apiVersion", "kind", "metadata")):
                self.fail(where, "not a Kubernetes object (apiVersion, kind, metadata)")
                continue
            if not isinstance(doc["metadata"], dict) or not doc["metadata"].get("name"):
                self.fail(where, "metadata.name missing")
                continue
            docs.append((where, doc))
        if not docs and self.failures == before:
            self.fail(self.rel(path), "no Kubernetes object in the file")
        return docs

    def schema_check(self, where: str, doc: dict) -> bool:
        for v in self.versions:
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(root)"
                self.fail(where, f"{ident(doc)} against Kubernetes {v}: {path}: {e.message}")
                return False
            except (kv_utils.SchemaNotFoundError, kv_utils.VersionNotSupportedError,
                    kv_utils.InvalidSchemaError) as e:
                self.fail(where, f"{ident(doc)}: {e.message}")
                return False
        return True

    # --- embedded configs -----------------------------------------------------------------

    def configs_check(self, where: str, doc: dict, path: Path) -> None:
        if doc["kind"] != "ConfigMap":
            return
        for key, text in sorted((doc.get("data") or {}).items()):
            if not key.endswith(".toml"):
                continue
            self.configs += 1
            label = f"{where} {ident(doc)} data.{key}"
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                self.fail(label, f"not TOML: {e}")
                continue
            dest = self.out / path.parent.relative_to(self.root) / doc["metadata"]["name"] / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            print(f"toml {label} -> {self.rel(dest)}")
            mcpgate = os.environ.get("MCPGATE_BIN")
            if mcpgate:
                self.mcpgate_check(mcpgate, label, dest, tomllib.loads(text))

    def mcpgate_check(self, mcpgate: str, label: str, dest: Path, config: dict) -> None:
        """`mcpgate check` on the config; a `sessions.key_file` (a path inside the pod) is
        pointed at a throwaway key written next to the copy checked."""
        text = dest.read_text()
        key_file = (config.get("sessions") or {}).get("key_file")
        note = ""
        if key_file:
            test_key = dest.with_name("session-keys.test")
            test_key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
            quoted = f'"{key_file}"'
            if quoted not in text:
                self.fail(label, f"sessions.key_file {key_file} is not written as a plain string")
                return
            text = text.replace(quoted, f'"{test_key}"')
            note = f" (key_file {key_file} -> a throwaway key)"
        checked = dest.with_suffix(".check.toml")
        checked.write_text(text)
        r = subprocess.run([mcpgate, "check", "--config", str(checked)], capture_output=True, text=True)
        if r.returncode != 0:
            self.fail(label, f"mcpgate check{note}:\n{r.stdout}{r.stderr}")
        else:
            print(f"ok   {label}: mcpgate check{note}")

    # --- references between objects ---------------------------------------------------------

    def refs_check(self, scope: str, objs: list[tuple[str, dict]]) -> int:
        """Cross-object checks for one directory; returns the number of references resolved."""
        n = 0
        seen: dict[tuple, str] = {}
        for where, o in objs:
            key = (o["kind"], ns(o), o["metadata"]["name"])
            if key in seen:
                self.fail(where, f"{ident(o)} also defined at {seen[key]}")
            seen[key] = where

        def find(kind: str, namespace: str, name: str) -> dict | None:
            return next((o for _, o in objs if o["kind"] == kind and ns(o) == namespace
                         and o["metadata"]["name"] == name), None)

        pods = [(where, o, o["spec"]["template"]) for where, o in objs
                if o["kind"] in WORKLOADS and "template" in o.get("spec", {})]

        def pods_matching(namespace: str, selector: dict) -> list:
            return [(w, o, t) for w, o, t in pods if ns(o) == namespace
                    and selects(selector, (t.get("metadata") or {}).get("labels") or {})]

        for where, o, tmpl in pods:
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            sel = o["spec"].get("selector")
            if sel is not None and not selects(sel, labels):
                self.fail(where, f"{ident(o)}: spec.selector does not match the pod template's labels")
            n += 1
            spec = tmpl.get("spec") or {}
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
                cwhere = f"{ident(o)} container {c['name']}"
                ports = {p.get("name") for p in c.get("ports") or []}
                if "mcpgate" in c.get("image", ""):
                    # Readiness must follow upstream health and draining; liveness must not.
                    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
                        n += 1
                        got = ((c.get(probe) or {}).get("httpGet") or {}).get("path")
                        if got != path:
                            self.fail(where, f"{cwhere}: {probe} must GET {path}, not {got}")
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    act = (c.get(probe) or {})
                    port = (act.get("httpGet") or act.get("tcpSocket") or act.get("grpc") or {}).get("port")
                    if isinstance(port, str):
                        n += 1
                        if port not in ports:
                            self.fail(where, f"{cwhere}: {probe} port `{port}` is not a named container port")
                for m in c.get("volumeMounts") or []:
                    n += 1
                    if m["name"] not in volumes:
                        self.fail(where, f"{cwhere}: volumeMount `{m['name']}` has no volume")
            for v in volumes.values():
                sources = [v] + list((v.get("projected") or {}).get("sources") or [])
                for s in sources:
                    for kind, field, ref in (("ConfigMap", "configMap", "name"), ("Secret", "secret", "secretName"),
                                             ("Secret", "secret", "name")):
                        r = s.get(field)
                        if not r or ref not in r or r.get("optional"):
                            continue
                        n += 1
                        target = find(kind, ns(o), r[ref])
                        if target is None:
                            self.fail(where, f"{ident(o)}: volume `{v['name']}` names {kind} `{r[ref]}`, "
                                             f"not defined in {scope} or deploy/")
                            continue
                        keys = set(target.get("data") or {}) | set(target.get("stringData") or {})
                        for item in r.get("items") or []:
                            if item["key"] not in keys:
                                self.fail(where, f"{ident(o)}: {kind} `{r[ref]}` has no key `{item['key']}`")

        for where, o in objs:
            kind, spec = o["kind"], o.get("spec") or {}
            if kind == "Service" and spec.get("selector"):
                n += 1
                matched = pods_matching(ns(o), {"matchLabels": spec["selector"]})
                if not matched:
                    self.fail(where, f"{ident(o)}: selector matches no pod template in {scope}")
                for p in spec.get("ports") or []:
                    tp = p.get("targetPort")
                    if isinstance(tp, str):
                        n += 1
                        named = {q.get("name") for _, _, t in matched
                                 for c in (t.get("spec") or {}).get("containers") or [] for q in c.get("ports") or []}
                        if tp not in named:
                            self.fail(where, f"{ident(o)}: targetPort `{tp}` is no named port of its pods")
            elif kind in ("PodDisruptionBudget", "NetworkPolicy"):
                n += 1
                sel = spec.get("selector") if kind == "PodDisruptionBudget" else spec.get("podSelector")
                if not pods_matching(ns(o), sel or {}):
                    self.fail(where, f"{ident(o)}: selector matches no pod template in {scope}")
                for rule in spec.get("ingress") or []:
                    for peer in rule.get("from") or []:
                        if "podSelector" in peer and "namespaceSelector" not in peer:
                            n += 1
                            if not pods_matching(ns(o), peer["podSelector"]):
                                self.fail(where, f"{ident(o)}: ingress podSelector matches no pod in {scope}")
            elif kind == "HorizontalPodAutoscaler":
                n += 1
                t = spec["scaleTargetRef"]
                if find(t["kind"], ns(o), t["name"]) is None:
                    self.fail(where, f"{ident(o)}: scaleTargetRef {t['kind']}/{t['name']} not defined in {scope}")
        return n

    def run(self) -> int:
        # deploy/prometheus holds Prometheus rule files, not Kubernetes objects
        # (checked by promtool in conformance/tests/test_deploy.py).
        files = sorted(p for p in self.root.rglob("*")
                       if p.suffix in (".yaml", ".yml") and p.is_file() and "prometheus" not in p.relative_to(self.root).parts)
        if not files:
            self.fail(self.rel(self.root), "no YAML files")
            return 1
        by_dir: dict[Path, list[tuple[str, dict]]] = {}
        for path in files:
            for where, doc in self.load(path):
                self.docs += 1
                if self.schema_check(where, doc):
                    print(f"ok   {where} {ident(doc)} (Kubernetes {', '.join(self.versions)}, strict)")
                self.configs_check(where, doc, path)
                by_dir.setdefault(path.parent, []).append((where, doc))
        shared = by_dir.get(self.root, [])
        for d in sorted(by_dir):
            if d == self.root and len(by_dir) > 1:
                continue
            scope = self.rel(d)
            before = self.failures
            objs = by_dir[d] + ([] if d == self.root else shared)
            n = self.refs_check(scope, objs)
            if self.failures == before:
                print(f"ok   {scope}/: {n} references between {len(objs)} objects resolve")
        verdict = "ok" if self.failures == 0 else "FAILED"
        print(f"validate-deploy: {verdict}: {self.docs} documents, {self.configs} embedded configs, "
              f"{self.failures} failures")
        return 0 if self.failures == 0 else 1


def ns(o: dict) -> str:
    return o["metadata"].get("namespace") or "default"


def ident(o: dict) -> str:
    return f"{o['kind']} {ns(o)}/{o['metadata']['name']}"


def selects(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a label map; empty selects all."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="directory of manifests (deploy/)")
    ap.add_argument("--out", type=Path, required=True, help="where embedded configs are written")
    ap.add_argument("--k8s", default="1.30,1.37", help="comma-separated Kubernetes versions")
    args = ap.parse_args()
    versions = [v.strip() for v in args.k8s.split(",") if v.strip()]
    return Checker(args.root.resolve(), args.out.resolve(), versions).run()


if __name__ == "__main__":
    sys.exit(main())
