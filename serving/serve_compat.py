"""The one place Quantum reaches into Ray Serve's private API (Ray 2.60, see constraints.txt).

Direct ingress (serving/ingress.py) needs the HTTP ports the ingress replicas listen on.
Serve's controller knows them (``get_target_groups``, the call Serve's own HAProxy
integration makes), but Ray 2.60 exposes neither the controller handle nor that call
publicly. ``PRIVATE_SURFACE`` lists what is used, as data: (owner, name, parameters), the
owner ``"module:Class"`` or a module, ``parameters`` a callable's parameter names
(``self`` left out) or None for an attribute. tests/unit/test_private_surface.py checks
each against the installed Ray.

Nothing here imports Serve at module import: Serve reads its direct-ingress switches
when it is first imported (serving/ingress.DirectIngress.enable must run before that).

The target groups themselves are public (``ray.serve.schema.TargetGroup``, alpha). Their
``protocol`` is the str enum ``ray.serve._private.common.RequestProtocol``; comparing it
with its value ``"HTTP"`` needs no private import.
"""

from __future__ import annotations

from typing import Any

HTTP = "HTTP"
"""``TargetGroup.protocol`` of HTTP target groups (a str enum, equal to its value)."""

PRIVATE_SURFACE: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("ray.serve.context", "_get_global_client", ("raise_if_no_controller_running",)),
    ("ray.serve._private.client:ServeControllerClient", "_controller", None),
    (
        "ray.serve._private.controller:ServeController",
        "get_target_groups",
        ("app_name", "from_proxy_manager"),
    ),
)
"""Every private Serve name used here: (owner, name, parameter names or None for an
attribute). Checked by tests/unit/test_private_surface.py."""


def serve_controller() -> Any:
    """The running Serve controller's actor handle (raises when Serve is not running).

    Private: ``ray.serve.context._get_global_client()`` and the client's ``_controller``;
    Ray 2.60's public ``serve`` API never hands out the controller.
    """
    from ray.serve.context import _get_global_client

    return _get_global_client()._controller


def http_target_ports(app_name: str, controller: Any = None) -> list[int]:
    """The ports of the application's HTTP targets, as the controller (by default
    ``serve_controller()``) reports them: the ingress replicas' own ports once they run
    with direct ingress, the proxy's before.

    Private: ``ServeController.get_target_groups`` (an actor method, no public wrapper).
    """
    import ray

    controller = serve_controller() if controller is None else controller
    groups = ray.get(controller.get_target_groups.remote(app_name))
    return [t.port for g in groups if g.protocol == HTTP for t in g.targets]
