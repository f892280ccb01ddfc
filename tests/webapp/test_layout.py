"""The web app's layout holds: imports only go down, and no module imports itself in a circle.

    queue/                      lanes and the broker: the bottom, it knows no job
    jobs/                       the lifecycle, dispatch, storage, what every surface shows
    worker/ pages/ api/ staff/  the four surfaces, each on jobs/ and queue/, none on another

Read from the source with the standard library's ast (every import statement, also those
inside functions), the way tests/stylize/test_isolation.py guards the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "webapp"
SURFACES = ("worker", "pages", "api", "staff")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module a file imports (`from x import y` counts as x and x.y), resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """{module: the webapp modules it imports}, migrations left out (Django writes them)."""
    paths = {module_name(p): p for p in APP.rglob("*.py") if "migrations" not in p.parts}
    return {name: {i for i in imported_names(path) if i in paths and i != name} for name, path in paths.items()}


def part(module: str) -> str:
    """The package a module belongs to (`jobs`, `pages`, …), or "" for the app's root modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def imports_between(graph, source_parts, target_parts) -> list[str]:
    return sorted(f"{m} -> {i}" for m, targets in graph.items() for i in targets
                  if part(m) in source_parts and part(i) in target_parts)


def test_there_is_no_import_cycle_in_webapp(graph):
    seen, on_path, cycles = set(), [], []

    def visit(module: str) -> None:
        if module in on_path:
            cycles.append(on_path[on_path.index(module):] + [module])
            return
        if module in seen:
            return
        seen.add(module)
        on_path.append(module)
        for target in sorted(graph[module]):
            # A package's __init__ importing its own modules is how packages work, not a cycle.
            if not target.startswith(module + "."):
                visit(target)
        on_path.pop()

    for module in sorted(graph):
        visit(module)
    assert cycles == []


def test_jobs_and_queue_never_import_a_surface(graph):
    assert imports_between(graph, {"jobs", "queue"}, set(SURFACES)) == []


def test_queue_knows_no_job(graph):
    assert imports_between(graph, {"queue"}, {"jobs"}) == []


@pytest.mark.parametrize("surface", SURFACES)
def test_a_surface_does_not_import_another(graph, surface):
    assert imports_between(graph, {surface}, set(SURFACES) - {surface}) == []


def test_the_lanes_import_nothing():
    assert imported_names(APP / "queue" / "lanes.py") == set()


def test_the_celery_app_is_configuration_only(graph):
    """It names the task and the heartbeat step by string: the worker's code is not imported by
    whatever sends a job or reads the broker."""
    assert graph["webapp.celery"] == {"webapp.queue.lanes"}


def test_the_package_layout_is_the_documented_one():
    packages = sorted(p.parent.name for p in APP.glob("*/__init__.py"))
    assert packages == ["api", "jobs", "management", "migrations", "pages", "queue", "staff", "templatetags",
                        "worker"]
