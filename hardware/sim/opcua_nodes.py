"""Building blocks of the simulated cabinets' OPC-UA address space and values."""

from __future__ import annotations

from typing import Any

from asyncua import ua

__all__ = ["VT", "Sample", "cast", "node_item", "method_arg", "bad_result"]

VT = {
    "bool": ua.VariantType.Boolean,
    "float64": ua.VariantType.Double,
    "float32": ua.VariantType.Float,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
}


class Sample(ua.DataValue):
    """A pushed value that is never changed after the write.

    asyncua deep-copies every written DataValue once per monitored item, in case the
    writer mutates it later (~100 µs each: most of a subscribed server's time at city
    size). Ours are made fresh for each write and never touched again, so a copy is the
    value itself."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> Sample:
        return self


def cast(value: float | bool | int, vt: ua.VariantType) -> float | bool | int:
    """A model value as the Python type the variant type wants."""
    if vt == ua.VariantType.Boolean:
        return bool(value)
    if vt in (ua.VariantType.Double, ua.VariantType.Float):
        return float(value)
    return int(value)


_RW = ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.CurrentWrite.mask


def node_item(
    nid: ua.NodeId,
    name: str,
    idx: int,
    parent: ua.NodeId | int,
    ref: int = ua.ObjectIds.HasComponent,
    value: ua.Variant | None = None,
    writable: bool = False,
) -> ua.AddNodesItem:
    """An AddNodesItem for an object (no value) or a variable/property (with a value)."""
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = nid
    item.BrowseName = ua.QualifiedName(name, idx)
    item.ParentNodeId = parent if isinstance(parent, ua.NodeId) else ua.NodeId(parent)
    item.ReferenceTypeId = ua.NodeId(ref)
    if value is None:
        item.NodeClass = ua.NodeClass.Object
        item.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseObjectType)
        attrs: ua.ObjectAttributes | ua.VariableAttributes = ua.ObjectAttributes()
        attrs.EventNotifier = 0
    else:
        item.NodeClass = ua.NodeClass.Variable
        item.TypeDefinition = ua.NodeId(
            ua.ObjectIds.PropertyType
            if ref == ua.ObjectIds.HasProperty
            else ua.ObjectIds.BaseDataVariableType
        )
        attrs = ua.VariableAttributes()
        attrs.Value = value
        attrs.DataType = ua.NodeId(getattr(ua.ObjectIds, value.VariantType.name))
        attrs.ValueRank = ua.ValueRank.Scalar
        attrs.Historizing = False
        level = _RW if writable else ua.AccessLevel.CurrentRead.mask
        attrs.AccessLevel = attrs.UserAccessLevel = level
    attrs.Description = ua.LocalizedText(name)
    attrs.DisplayName = ua.LocalizedText(name)
    attrs.WriteMask = attrs.UserWriteMask = 0
    item.NodeAttributes = attrs
    return item


def bad_result(code: int) -> ua.CallMethodResult:
    """A method call result carrying only a Bad status."""
    res = ua.CallMethodResult()
    res.StatusCode = ua.StatusCode(code)
    return res


def method_arg(name: str, type_id: int, text: str) -> ua.Argument:
    """The description of one method parameter."""
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(type_id)
    arg.ValueRank = -1
    arg.Description = ua.LocalizedText(text)
    return arg
