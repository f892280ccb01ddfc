"""The engine stands alone: no web framework or task queue in its imports, no CUDA touched on import.

The facts are gathered in one fresh interpreter (modules other tests imported do
not count there), in the order a Celery worker meets them: import, build a
config, import the rest of the package.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN_TOP_LEVEL = {"django", "celery", "webapp", "kombu", "redis", "rest_framework"}

PROBE = """
import importlib, json, pkgutil, sys
import torch, torch.cuda

lazy_init_calls = []
real_lazy_init = torch.cuda._lazy_init
def recording_lazy_init():  # every CUDA call that needs a context goes through here
    lazy_init_calls.append(1)
    return real_lazy_init()
torch.cuda._lazy_init = recording_lazy_init

import stylize
from stylize import vgg
report = {"cuda_after_import": torch.cuda.is_initialized(),
          "weights_loaded_on_import": vgg.load_state.cache_info().currsize,
          "trunks_built_on_import": vgg._cached_trunk.cache_info().currsize}
stylize.StyleConfig.from_dict({"size": 256, "device": "cuda:0"}, preset="fast")
stylize.StyleConfig(device="auto").to_dict()
report["cuda_after_config"] = torch.cuda.is_initialized()
report["modules"] = [m.name for m in pkgutil.walk_packages(stylize.__path__, "stylize.")]
for name in report["modules"]:
    importlib.import_module(name)  # stylize.__main__ included: main() only runs as a script
report["cuda_after_every_module"] = torch.cuda.is_initialized()
report["lazy_init_calls"] = len(lazy_init_calls)
report["top_level_modules"] = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def fresh_import(repo_root, python_env) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=repo_root, env=python_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_every_engine_module_pulls_in_no_web_or_queue_package(fresh_import):
    assert {"stylize.engine", "stylize.vgg", "stylize.__main__", "stylize.visualize"} <= set(fresh_import["modules"])
    assert "torch" in fresh_import["top_level_modules"]  # the probe does see what was imported
    assert not FORBIDDEN_TOP_LEVEL & set(fresh_import["top_level_modules"])


def test_importing_stylize_and_building_a_config_does_not_initialise_cuda(fresh_import):
    assert fresh_import["cuda_after_import"] is False
    assert fresh_import["cuda_after_config"] is False
    assert fresh_import["cuda_after_every_module"] is False
    assert fresh_import["lazy_init_calls"] == 0


def test_importing_stylize_loads_no_weights(fresh_import):
    assert fresh_import["weights_loaded_on_import"] == 0
    assert fresh_import["trunks_built_on_import"] == 0
