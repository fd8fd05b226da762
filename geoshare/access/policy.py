"""The sharing policy: from a ``Principal`` to what the layer engine needs to filter reads.

The rule (issue 5, before agreements): public layers are for everyone, anonymous included; shared
layers for any authenticated department; restricted layers for the owning department and platform
admins. Restricted fields are visible to the owning department and platform admins only.

The engine gets plain values — a ``Visibility`` it turns into a SQL predicate over ``gs.layer``, and
the set of hidden field names per layer — so a denied row or field never leaves the database.
Agreements plug in here: ``visibility`` adds the layers they grant (``Visibility.granted``) and
``hidden_fields`` narrows to the fields they list; area limits would add a row predicate per layer.
"""

from __future__ import annotations

from geoshare.access.identity import Principal
from layers.model import LayerInfo
from layers.registry import ANONYMOUS, TRUSTED, Visibility


def visibility(who: Principal) -> Visibility:
    """Which layers ``who`` may read, as the engine's ``Visibility``."""
    if who.is_platform_admin:
        return TRUSTED
    if who.is_anonymous or who.department is None:
        return ANONYMOUS
    return Visibility(department=who.department)


def is_owner(who: Principal, layer: LayerInfo) -> bool:
    """Owner's view: the layer's own department, or a platform admin."""
    return who.is_platform_admin or who.is_member_of(layer.department_code)


def hidden_fields(who: Principal, layer: LayerInfo) -> frozenset[str]:
    """Fields of ``layer`` that ``who`` must not see (names as in the API)."""
    if not layer.restricted_fields or is_owner(who, layer):
        return frozenset()
    return frozenset(layer.restricted_fields)
