"""Checks that a saved model fits the env it is run on, before anything runs.

A model trained on 3 assets and fed a 2-asset market fails deep inside a matrix
multiply with a message about tensor sizes, or worse, runs on misaligned features. These
checks compare the spaces the model was built for with the env's and raise one error
that names every differing key, both shapes (dtypes, bounds) and the likely cause: the
asset count, the observation window, the feature set, the execution horizon.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces


class SpaceMismatchError(ValueError):
    """A model's space differs from the env's; the message names every difference."""


class ObservationMismatchError(SpaceMismatchError):
    """The observation space a model was built for is not the one the env produces."""


class ActionMismatchError(SpaceMismatchError):
    """The action space a model was built for is not the one the env accepts."""


def check_observation_space(
    expected: spaces.Dict,
    actual: spaces.Dict,
    *,
    what: str = "model",
    assets: Sequence[str] | None = None,
) -> None:
    """Raise ObservationMismatchError naming every key where the env's observation space
    (``actual``) differs from the one ``what`` was built for (``expected``): shapes, dtypes,
    bounds, missing and extra keys, each with its likely cause (assets, window, features).
    ``assets`` (the env's asset names) are quoted in the hint."""
    problems = _differences(expected, actual, what, assets, _obs_hint)
    if problems:
        raise ObservationMismatchError(_message("observation", what, problems))


def check_action_space(
    expected: spaces.Dict,
    actual: spaces.Dict,
    *,
    what: str = "model",
    assets: Sequence[str] | None = None,
) -> None:
    """Raise ActionMismatchError naming every key where the env's action space differs from
    the one ``what`` was built for (see check_observation_space)."""
    problems = _differences(expected, actual, what, assets, _action_hint)
    if problems:
        raise ActionMismatchError(_message("action", what, problems))


_OBS_AXES = {
    ("market", 0): "window", ("market", 1): "assets", ("market", 2): "features",
    ("risk", 0): "risk_window", ("risk", 1): "risk features", ("portfolio", 0): "assets",
    ("portfolio", 1): "portfolio features", ("text", -1): "text",
}


def _differences(expected, actual, what, assets, hint) -> list[str]:
    if not isinstance(expected, spaces.Dict) or not isinstance(actual, spaces.Dict):
        if expected == actual:
            return []
        return [f"{what} expects {expected} but the env produces {actual}"]
    out = []
    for key, e in expected.spaces.items():
        a = actual.spaces.get(key)
        if a is None:
            out.append(f"{what} expects {_describe(key, e)} but the env produces no {key!r}")
        elif e != a:
            exp, act = _describe(key, e), _describe(key, a)
            if isinstance(e, spaces.Box) and isinstance(a, spaces.Box):
                if e.dtype != a.dtype:
                    exp, act = f"{exp} {e.dtype}", f"{act} {a.dtype}"
                same = np.array_equal(e.low, a.low) and np.array_equal(e.high, a.high)
                if e.shape == a.shape and not same:
                    exp, act = f"{exp} in {_bounds(e)}", f"{act} in {_bounds(a)}"
            why = hint(key, e, a, what, assets)
            out.append(
                f"{what} expects {exp} but the env produces {act}" + (f": {why}" if why else "")
            )
    out += [
        f"the env produces {_describe(key, a)} that the {what} was not built for"
        for key, a in actual.spaces.items()
        if key not in expected.spaces
    ]
    return out


def _message(kind: str, what: str, problems: list[str]) -> str:
    return (
        f"the {what}'s {kind} space does not match the env's ({len(problems)} difference"
        f"{'s' if len(problems) > 1 else ''}):\n  - " + "\n  - ".join(problems) + f"\nbuild the "
        f"env from the data and EnvConfig the {what} was trained with, or retrain it on this data"
    )


def _describe(key: str, space: spaces.Space) -> str:
    if isinstance(space, spaces.Box):
        return f"{key} {tuple(space.shape)}"
    if isinstance(space, spaces.MultiDiscrete):
        return f"{key} MultiDiscrete({space.nvec.tolist()})"
    return f"{key} {space}"


def _bounds(box: spaces.Box) -> str:
    lo, hi = box.low, box.high
    if lo.size and (lo == lo.flat[0]).all() and (hi == hi.flat[0]).all():
        return f"[{lo.flat[0]}, {hi.flat[0]}]"
    return f"[{lo.min()}..{lo.max()}, {hi.min()}..{hi.max()}]"


def _count_hint(n_model: int, n_env: int, what: str, assets) -> str:
    names = f" ({', '.join(assets)})" if assets is not None and len(assets) == n_env else ""
    return f"the data has {n_env} assets{names}, the {what} was trained on {n_model}"


def _obs_hint(key, e, a, what, assets) -> str | None:
    shapes = getattr(e, "shape", None), getattr(a, "shape", None)
    if None in shapes or len(shapes[0]) != len(shapes[1]):
        return None
    hints = []
    for axis, (x, y) in enumerate(zip(*shapes, strict=True)):
        meaning = _OBS_AXES.get((key, axis)) or _OBS_AXES.get((key, axis - len(shapes[0])))
        if x == y or meaning is None:
            continue
        if meaning == "assets":
            hints.append(_count_hint(x, y, what, assets))
        elif meaning in ("window", "risk_window"):
            hints.append(f"the env's {meaning} is {y}, the {what}'s {x} (EnvConfig.{meaning})")
        elif meaning == "features":
            hints.append(
                f"the data has {y} features per asset, the {what} was trained on {x} "
                "(another feature set, or a planted_signal feature)"
            )
        elif meaning == "text":
            hints.append(f"text embeddings have {y} dims, the {what} expects {x} (model.text_dim)")
        else:
            hints.append(f"the env observes {y} {meaning}, the {what} {x} (another code version)")
    return "; ".join(hints) or None


def _action_hint(key, e, a, what, assets) -> str | None:
    e_vec = np.asarray(getattr(e, "nvec", np.zeros(e.shape or (0,))))
    a_vec = np.asarray(getattr(a, "nvec", np.zeros(a.shape or (0,))))
    per_asset = 2 if key in ("risk", "execution") else 1
    if e_vec.shape != a_vec.shape and e_vec.ndim == a_vec.ndim == 1:
        return _count_hint(len(e_vec) // per_asset, len(a_vec) // per_asset, what, assets)
    if key == "execution" and e_vec.shape == a_vec.shape and len(e_vec) >= 2:
        return (
            f"the env has {a_vec[0]} execution styles and horizons up to {a_vec[1]} bars, the "
            f"{what} {e_vec[0]} and {e_vec[1]} (ExecStyle, EnvConfig.execution.max_horizon)"
        )
    return None
