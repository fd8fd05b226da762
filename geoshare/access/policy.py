"""The sharing policy: from a ``Principal`` to what the layer engine needs to filter reads.

The rule: public layers are for everyone, anonymous included; shared layers for any authenticated
department; restricted layers for the owning department and platform admins, and for a department
holding an approved, current sharing agreement (共享协议) that names the layer. Restricted fields of
a public or shared layer are visible to the owner, platform admins and holders of an agreement that
lists them.

Under an agreement on a restricted layer the holder sees exactly the fields it lists (the key field
always, since it is the feature id) and, when the agreement names a division area, only the rows
inside it. On a public or shared layer an agreement only unlocks the restricted fields it lists,
and only when it has no area: the holder may read every row anyway, and a field cannot be visible
on some rows and not on others.

The engine gets plain values — a ``Visibility`` it turns into a SQL predicate over ``gs.layer``, the
hidden field names and the area per layer — so a denied row or field never leaves the database.
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
    return Visibility(department=who.department, granted=frozenset(who.grants))


def is_owner(who: Principal, layer: LayerInfo) -> bool:
    """Owner's view: the layer's own department, or a platform admin."""
    return who.is_platform_admin or who.is_member_of(layer.department_code)


def hidden_fields(who: Principal, layer: LayerInfo) -> frozenset[str]:
    """Fields of ``layer`` that ``who`` must not see (names as in the API)."""
    if is_owner(who, layer):
        return frozenset()
    grant = who.grants.get(layer.id)
    if layer.sharing_class == "restricted" and grant is not None:
        allowed = grant.fields | {layer.key_field}
        return frozenset(a.name for a in layer.attributes if a.name not in allowed)
    restricted = frozenset(layer.restricted_fields)
    if grant is not None and grant.area is None:
        return restricted - grant.fields
    return restricted


def area(who: Principal, layer: LayerInfo) -> bytes | None:
    """The area (WKB, EPSG:4326) ``who`` may read rows of ``layer`` in; None for no limit."""
    if layer.sharing_class != "restricted" or is_owner(who, layer):
        return None
    grant = who.grants.get(layer.id)
    return grant.area if grant is not None else None
