"""The private Ray and numba API Quantum uses exists, as it is used, in the pinned versions.

Every private use lives in a compat module (rl.rllib_compat, serving.serve_compat,
envs.core.numba_compat), which declares it in ``PRIVATE_SURFACE`` as
(owner, name, parameter names or None for an attribute). Here each entry is checked
against the installed library: callables by their parameter names, attributes as class
attributes or as assignments in an ``__init__`` of the owner's class hierarchy. The
compat modules' code is checked to use no private name its list lacks (and to list
none it no longer uses), and product code outside them to use none at all. A failure
names what changed, e.g. "RLlib SingleAgentEnvRunner._sample lost parameter 'force_reset'".
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numba import njit

from envs.core import numba_compat
from rl import rllib_compat
from serving import serve_compat

COMPAT_MODULES = (rllib_compat, serve_compat, numba_compat)
SURFACE = [(module, entry) for module in COMPAT_MODULES for entry in module.PRIVATE_SURFACE]

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("rl", "envs", "serving", "backtest", "market", "risk", "llm", "cluster")
PRIVATE_USE = re.compile(
    r"ray\.[a-z_.]*_private|super\(\)\._sample|_needs_initial_reset|_episodes_for_metrics"
    r"|_increase_sampled_metrics|_get_clip_function|_check_is_built|_weights_seq_no"
    r"|_make_batch_if_necessary|_rl_module_spec|_learner_class|_get_global_client|_nrt\b"
)
"""The project hook's pattern (plus numba's ``_nrt``): private uses outside compat modules."""


def _library(owner: str) -> str:
    for prefix, name in (("ray.rllib", "RLlib"), ("ray.serve", "Ray Serve"), ("numba", "numba")):
        if owner.startswith(prefix):
            return name
    return owner.split(".")[0]


def _where(owner: str, name: str) -> str:
    module, _, qualname = owner.partition(":")
    return f"{_library(owner)} {qualname or module}.{name}"


def _resolve(owner: str):
    module, _, qualname = owner.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def _set_in_init(cls: type, name: str) -> bool:
    """Whether an ``__init__`` of cls or its bases assigns ``self.<name>``."""
    for klass in inspect.getmro(cls):
        init = vars(klass).get("__init__")
        if not inspect.isfunction(init):
            continue
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(init)))):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            else:
                continue
            if any(
                isinstance(t, ast.Attribute) and t.attr == name
                and isinstance(t.value, ast.Name) and t.value.id == "self"
                for t in targets
            ):
                return True
    return False


def _parameters(function) -> tuple[str, ...]:
    # once a class has been made a Ray actor in this process (any earlier Ray test), Ray's
    # tracing hook has added its own keyword to every method: not a change of the API
    names = tuple(p for p in inspect.signature(function).parameters if p != "_ray_trace_ctx")
    return names[1:] if names[:1] in (("self",), ("cls",)) else names


def _entry_id(item) -> str:
    module, (owner, name, _) = item
    return f"{module.__name__.rsplit('.', 1)[-1]}:{owner.rpartition(':')[2] or owner}.{name}"


@pytest.mark.parametrize("item", SURFACE, ids=[_entry_id(i) for i in SURFACE])
def test_private_name_exists_as_used(item):
    module, (owner, name, expected) = item
    where = _where(owner, name)
    try:
        obj = _resolve(owner)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{_library(owner)} {owner} is gone ({error}); {module.__name__} uses it")
    if expected is None:
        present = hasattr(obj, name) or (inspect.isclass(obj) and _set_in_init(obj, name))
        assert present, (
            f"{where} is gone (no class attribute, not set in an __init__): "
            f"{module.__name__} reads or writes it"
        )
        return
    function = getattr(obj, name, None)
    assert callable(function), f"{where} is gone: {module.__name__} calls or overrides it"
    actual = _parameters(function)
    for parameter in expected:
        assert parameter in actual, f"{where} lost parameter {parameter!r} (now {actual})"
    for parameter in actual:
        assert parameter in expected, f"{where} gained parameter {parameter!r} (now {actual})"
    assert actual == expected, f"{where} reordered its parameters: {actual}, not {expected}"


def _private(name: str | None) -> bool:
    return bool(name) and name.startswith("_") and not name.startswith("__")


def _private_names_used(module: ModuleType) -> set[str]:
    """Private names in a module's code: attributes, names, definitions, keywords,
    imports and identifier-like strings; docstrings and PRIVATE_SURFACE itself left out."""
    tree = ast.parse(inspect.getsource(module))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    skipped: set[int] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "PRIVATE_SURFACE" for t in targets):
            skipped |= {id(n) for n in ast.walk(node)}
    used = set()
    for node in ast.walk(tree):
        if id(node) in skipped or id(node) in docstrings:
            continue
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            name = node.name
        elif isinstance(node, ast.keyword):
            name = node.arg
        elif isinstance(node, ast.alias):
            name = node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value if re.fullmatch(r"_\w+", node.value) else None
        else:
            continue
        if _private(name):
            used.add(name)
    return used


@pytest.mark.parametrize("module", COMPAT_MODULES, ids=lambda m: m.__name__)
def test_compat_module_uses_exactly_the_listed_private_names(module):
    listed = {
        n for _, name, params in module.PRIVATE_SURFACE for n in (name, *(params or ()))
        if _private(n)
    }
    used = _private_names_used(module)
    assert not used - listed, f"{module.__name__} uses {sorted(used - listed)} unlisted"
    assert not listed - used, f"{module.__name__} lists {sorted(listed - used)}, now unused"


def test_no_private_use_outside_the_compat_modules():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.name.endswith("_compat.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_USE.search(line) and "compat" not in line.lower()
    ]
    assert not found, "private Ray/numba use outside a compat module:\n" + "\n".join(found)


def test_connectors_are_default_reads_the_configured_connectors():
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    config = AlgorithmConfig()
    assert rllib_compat.connectors_are_default(config)
    config.env_runners(env_to_module_connector=lambda env, spaces, device: [])
    assert not rllib_compat.connectors_are_default(config), (
        "RLlib AlgorithmConfig.env_runners(env_to_module_connector=...) no longer stores "
        "it where rllib_compat.connectors_are_default reads it"
    )


def test_class_config_keys_are_algorithm_config_dict_keys():
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    keys = AlgorithmConfig().to_dict()
    for key in rllib_compat.CLASS_CONFIG_KEYS:
        assert key in keys, f"RLlib AlgorithmConfig.to_dict() lost key {key!r}"


def test_algorithm_checkpoint_layout():
    expected = Path("ck/learner_group/learner/rl_module/default_policy")
    assert rllib_compat.algorithm_module_dir(Path("ck")) == expected, (
        "RLlib's component names changed: checkpoints written before keep the RLModule "
        f"in {expected.relative_to('ck')}"
    )


def test_learner_clip_hook_returns_the_class_clip_function():
    from rl.learner import QuantumPPOLearner, clip_by_global_norm

    assert QuantumPPOLearner._get_clip_function() is clip_by_global_norm


def test_serve_http_protocol_value():
    from ray.serve.schema import TargetGroup

    protocol = TargetGroup.model_fields["protocol"].annotation
    assert issubclass(protocol, str), "Ray Serve TargetGroup.protocol is no longer a str enum"
    assert protocol(serve_compat.HTTP) == serve_compat.HTTP, (
        f"Ray Serve TargetGroup.protocol has no {serve_compat.HTTP!r} member"
    )


def test_njit_without_refcount_compiles_without_nrt():
    def first_of_view(a):
        view = a[1:]
        return view[0]

    data = np.arange(3.0)
    plain = njit(first_of_view)
    without = numba_compat.njit_without_refcount()(first_of_view)
    assert without(data) == plain(data) == 1.0
    count = lambda kernel: "".join(kernel.inspect_llvm().values()).count("NRT_decref")  # noqa: E731
    assert count(plain) > 0, "numba no longer refcounts array views: the check below proves nothing"
    assert count(without) == 0, "numba's _nrt=False no longer switches reference counting off"
