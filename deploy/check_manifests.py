"""Check the deployments offline: Kubernetes manifests against the API schemas, compose against its own schema.

    python deploy/check_manifests.py                      # deploy/compose.yaml, deploy/k8s/base, deploy/k8s/overlays/*
    python deploy/check_manifests.py deploy/k8s/overlays/gpu my-compose.yaml

Kubernetes: each kustomization is rendered (``kubectl kustomize`` where kubectl is installed, else the small
renderer below, which knows only what these kustomizations use: resources, patches (strategic merge: maps merged,
lists of named items merged by name), images, namespace; anything else is refused), then every resource is validated
with kubernetes-validate (the Kubernetes OpenAPI schemas, strict: unknown fields are errors) for each version in
``K8S_VERSIONS``.  Compose: compose-spec's JSON schema, as check-jsonschema ships it (``vendor.compose-spec``).
The schemas type values but do not bound them, so both are also checked for what the schemas let through:
replicas below 0, ports outside 1..65535, an autoscaler whose maximum is below its minimum, a probe naming a port
its container does not declare.

Each problem is one line (``where: what: path: why``); exit 1 if any, else one ``ok`` line per file checked.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

K8S_VERSIONS = ("1.33.0", "1.37.0")  # the oldest Kubernetes release still maintained upstream, and the newest
ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = [ROOT / "deploy" / "compose.yaml", ROOT / "deploy" / "k8s" / "base",
            *sorted((ROOT / "deploy" / "k8s" / "overlays").glob("*"))]
KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "patches", "images", "namespace"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class CheckError(Exception):
    """A manifest that cannot even be read or rendered: one line."""


# --------------------------------------------------------------------------------------------- kustomize

def render(kdir: Path, renderer: str = "auto") -> list[dict[str, Any]]:
    """The resources of the kustomization in ``kdir``: ``kubectl kustomize`` (renderer kubectl, or auto where it
    is installed) or :func:`render_simple` (python)."""
    if renderer == "kubectl" or (renderer == "auto" and shutil.which("kubectl")):
        out = subprocess.run(["kubectl", "kustomize", str(kdir)], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise CheckError(f"kubectl kustomize: {(out.stderr.strip().splitlines() or ['failed'])[-1]}")
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    return render_simple(kdir)


def render_simple(kdir: Path) -> list[dict[str, Any]]:
    kfile = kdir / "kustomization.yaml"
    if not kfile.is_file():
        raise CheckError(f"no kustomization.yaml in {kdir}")
    k = _load_one(kfile)
    unknown = set(k) - KUSTOMIZE_KEYS
    if unknown:
        raise CheckError(f"{kfile}: this checker's renderer does not know {', '.join(sorted(unknown))} "
                         "(install kubectl to render it)")
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        p = (kdir / res).resolve()
        docs += render_simple(p) if p.is_dir() else _load_all(p)
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise CheckError(f"{kfile}: only patches given by path (strategic merge) are known here")
        for body in _load_all(kdir / patch["path"]):
            kind, name = body["kind"], body["metadata"]["name"]
            target = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
            if len(target) != 1:
                raise CheckError(f"{kdir / patch['path']}: no single {kind}/{name} to patch")
            merged = _merge(target[0], body)
            docs[docs.index(target[0])] = merged
    for d in docs:
        if "namespace" in k and d["kind"] != "Namespace":
            d.setdefault("metadata", {})["namespace"] = k["namespace"]
        for image in k.get("images", []):
            for c in _containers(d):
                name, _, _ = c.get("image", "").partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image['newTag']}" if "newTag" in image \
                        else image.get("newName", name)
    return docs


def _merge(base: Any, patch: Any) -> Any:
    """A strategic merge, as far as these manifests need it: maps key by key, lists of named maps by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            out[key] = _merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and all(isinstance(x, dict) and "name" in x
                                                                   for x in base + patch)):
        out = copy.deepcopy(base)
        names = [x["name"] for x in out]
        new = []
        for item in patch:
            if item["name"] in names:
                out[names.index(item["name"])] = _merge(out[names.index(item["name"])], item)
            else:
                new.append(copy.deepcopy(item))
        return new + out  # kustomize puts a patch's new items first
    return copy.deepcopy(patch)


def _load_all(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as e:
        raise CheckError(f"{path}: {str(e).splitlines()[0]}") from None


def _load_one(path: Path) -> dict[str, Any]:
    docs = _load_all(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise CheckError(f"{path}: one YAML mapping expected")
    return docs[0]


# --------------------------------------------------------------------------------------------- Kubernetes

def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") in WORKLOADS:
        return ((doc.get("spec") or {}).get("template") or {}).get("spec")
    if doc.get("kind") == "Pod":
        return doc.get("spec")
    return None


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(doc) or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _bad_port(value: Any) -> bool:
    return isinstance(value, int) and not 1 <= value <= 65535


def k8s_ranges(doc: dict[str, Any]) -> Iterator[str]:
    """What the schemas let through (they type values, they do not bound them): ``path: why``."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in WORKLOADS and isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        yield f"spec.replicas: {spec['replicas']} is below 0"
    if kind == "HorizontalPodAutoscaler":
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if isinstance(lo, int) and lo < 1:
            yield f"spec.minReplicas: {lo} is below 1"
        if isinstance(hi, int) and isinstance(lo, int) and hi < lo:
            yield f"spec.maxReplicas: {hi} is below minReplicas {lo}"
    if kind == "Service":
        for i, p in enumerate(spec.get("ports") or []):
            for key in ("port", "targetPort", "nodePort"):
                if _bad_port(p.get(key)):
                    yield f"spec.ports[{i}].{key}: {p[key]} is not a port (1..65535)"
    if kind == "NetworkPolicy":
        for way in ("ingress", "egress"):
            for i, rule in enumerate(spec.get(way) or []):
                for j, p in enumerate(rule.get("ports") or []):
                    if _bad_port(p.get("port")):
                        yield f"spec.{way}[{i}].ports[{j}].port: {p['port']} is not a port (1..65535)"
    for c in _containers(doc):
        names = {p.get("name") for p in c.get("ports") or []}
        for j, p in enumerate(c.get("ports") or []):
            if _bad_port(p.get("containerPort")):
                yield f"container {c.get('name')}: ports[{j}].containerPort: {p['containerPort']} is not a port " \
                      "(1..65535)"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, str) and port not in names:
                yield f"container {c.get('name')}: {probe}: port {port!r} is not one of its ports"
            elif _bad_port(port):
                yield f"container {c.get('name')}: {probe}: port {port} is not a port (1..65535)"


def check_k8s(docs: Iterable[dict[str, Any]], where: str, versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    import kubernetes_validate

    problems = []
    for doc in docs:
        ident = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.absolute_path) or "(top)"
                problems.append(f"{where}: {ident}: {path}: {e.message} (Kubernetes {e.version})")
                break
            except (kubernetes_validate.SchemaNotFoundError, KeyError) as e:
                problems.append(f"{where}: {ident}: no schema for it in Kubernetes {version} ({e})")
                break
        problems += [f"{where}: {ident}: {why}" for why in k8s_ranges(doc)]
    return problems


# --------------------------------------------------------------------------------------------- compose

def compose_schema() -> dict[str, Any]:
    """compose-spec's JSON schema, as check-jsonschema vendors it (with its license and provenance)."""
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    return json.loads(text)


def compose_ranges(doc: dict[str, Any]) -> Iterator[str]:
    for name, svc in (doc.get("services") or {}).items():
        replicas = (svc.get("deploy") or {}).get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            yield f"services.{name}.deploy.replicas: {replicas} is below 0"
        for i, p in enumerate(svc.get("ports") or []):
            text = str(p.get("published", "")) + ":" + str(p.get("target", "")) if isinstance(p, dict) else str(p)
            for part in text.split("/")[0].split(":")[-2:]:
                for bound in part.split("-"):
                    if bound.isdigit() and not 1 <= int(bound) <= 65535:
                        yield f"services.{name}.ports[{i}]: {bound} is not a port (1..65535)"


def check_compose(path: Path) -> list[str]:
    import jsonschema

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        return [f"{path}: {str(e).splitlines()[0]}"]
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)  # the draft it names (2020-12 today)
    problems = [f"{path}: {'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]
    return problems + [f"{path}: {why}" for why in compose_ranges(doc or {})]


# --------------------------------------------------------------------------------------------- main

def check(path: Path, renderer: str = "auto") -> tuple[list[str], str]:
    """(problems, what was checked) for a compose file or a kustomization folder."""
    try:
        if path.is_dir():
            docs = render(path, renderer)
            return check_k8s(docs, str(path)), f"{path}: {len(docs)} resources, Kubernetes {', '.join(K8S_VERSIONS)}"
        return check_compose(path), f"{path}: compose-spec"
    except CheckError as e:
        return [f"{path}: {e}"], ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    renderer = "auto"
    if args[:1] == ["--renderer"]:
        renderer, args = args[1], args[2:]
    failed = False
    for p in [Path(a) for a in args] or DEFAULTS:
        problems, what = check(p, renderer)
        for line in problems:
            print(line)
        if problems:
            failed = True
        else:
            print(f"ok {what}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
