"""Build a kustomize directory in Python, for the tests of deploy/kubernetes (no kustomize binary needed).

``build(path)`` returns the list of objects ``kubectl apply -k path`` would send, for the part of
kustomize those manifests use, and no more:

* ``resources``: YAML files (every document) and directories (built recursively);
* ``components``: Component directories: their ``resources`` and ``patches`` apply to the objects so far;
* ``namespace``: set on every object (none of ours is cluster-scoped);
* ``images``: ``newName`` / ``newTag`` for containers whose image is ``name``, tagged or not;
* ``replicas``: ``count`` for the Deployment of that name;
* ``patches``: a strategic-merge patch file (the object named by its kind and name) or, with a
  ``target``, a JSON 6902 patch file (``add``, ``replace``, ``remove``).

Strategic merge here: mappings merge key by key; a list whose items all carry ``name`` (containers,
env, volumes, volumeMounts) merges item by item on ``name``; any other list is replaced; ``null``
deletes a key. That is Kubernetes' rule for the lists the overlays patch, not for every list (ports,
for one, merge on ``containerPort``). Any other kustomization key, a patch without a matching object, or
a JSON patch operation not listed stops the build with ``KustomizeError``: a manifest that needs more
of kustomize must first grow this file (or the tests switch to ``kustomize build``), instead of being
checked against something kustomize would not produce.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "images",
    "replicas",
    "patches",
}

Object = dict[str, Any]


class KustomizeError(Exception):
    pass


def build(directory: Path) -> list[Object]:
    """The objects of the kustomization in ``directory``, in kustomize's order of inclusion."""
    kustomization = _kustomization(directory, kind="Kustomization")
    return _apply(directory, kustomization, objects=[])


def _kustomization(directory: Path, *, kind: str) -> Object:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    kustomization = yaml.safe_load(path.read_text()) or {}
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{path}: {sorted(unknown)} not supported by this test helper")
    if kustomization.get("kind", "Kustomization") != kind:
        raise KustomizeError(f"{path}: expected a {kind}, found {kustomization.get('kind')}")
    return kustomization


def _apply(directory: Path, kustomization: Object, *, objects: list[Object]) -> list[Object]:
    objects = objects + _resources(directory, kustomization.get("resources", []))
    for component in kustomization.get("components", []):
        component_dir = (directory / component).resolve()
        objects = _apply(component_dir, _kustomization(component_dir, kind="Component"), objects=objects)
    for patch in kustomization.get("patches", []):
        objects = _patch(directory, patch, objects)
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    for replicas in kustomization.get("replicas", []):
        _find(objects, kind="Deployment", name=replicas["name"])["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def _resources(directory: Path, entries: list[str]) -> list[Object]:
    objects: list[Object] = []
    for entry in entries:
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def _find(objects: list[Object], *, kind: str, name: str) -> Object:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KustomizeError(f"no {kind} named {name} to patch")


def _patch(directory: Path, patch: Object, objects: list[Object]) -> list[Object]:
    if set(patch) - {"path", "target"}:
        raise KustomizeError(f"patch {patch}: only path and target are supported")
    body = yaml.safe_load((directory / patch["path"]).read_text())
    if "target" in patch:
        target = patch["target"]
        obj = _find(objects, kind=target["kind"], name=target["name"])
        for operation in body:
            _json_patch(obj, operation)
        return objects
    obj = _find(objects, kind=body["kind"], name=body["metadata"]["name"])
    merged = strategic_merge(obj, body)
    return [merged if item is obj else item for item in objects]


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if _named_list(base) and _named_list(patch):
        merged_list = copy.deepcopy(base)
        for item in patch:
            for index, existing in enumerate(merged_list):
                if existing["name"] == item["name"]:
                    merged_list[index] = strategic_merge(existing, item)
                    break
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) and "name" in item for item in value)


def _json_patch(obj: Object, operation: Object) -> None:
    op = operation["op"]
    if op not in {"add", "replace", "remove"}:
        raise KustomizeError(f"JSON patch operation {op} not supported by this test helper")
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].lstrip("/").split("/")
    ]
    container: Any = obj
    for part in parents:
        container = container[int(part)] if isinstance(container, list) else container[part]
    key: Any = int(last) if isinstance(container, list) and last != "-" else last
    value = copy.deepcopy(operation.get("value"))
    if op == "remove":
        del container[key]
    elif op == "replace":
        if isinstance(container, dict) and key not in container:
            raise KustomizeError(f"JSON patch replace of a missing {operation['path']}")
        container[key] = value
    elif isinstance(container, list):
        container.insert(len(container) if key == "-" else key, value)
    else:
        container[key] = value


def _set_image(objects: list[Object], image: Object) -> None:
    name = image["name"]
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            current = container["image"]
            if current != name and not current.startswith(f"{name}:"):
                continue
            tag = current.partition(":")[2]
            new = image.get("newName", name)
            tag = image.get("newTag", tag)
            container["image"] = f"{new}:{tag}" if tag else new
