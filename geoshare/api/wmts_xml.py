"""WMTS 1.0.0 documents: the capabilities and the OWS 1.1 exception report.

Matrix sets: Tianditu's ``c`` (EPSG:4490, ``CGCS2000Quad``) and ``w`` (EPSG:3857,
``TianDiTuWebMercator``), and ``WebMercatorQuad`` with the GoogleMapsCompatible well-known scale
set. Scale denominators are ``layers.tiles.matrixsets``'s, on the OGC 0.28 mm pixel, so clients
that derive resolutions from them (OpenLayers, GDAL, QGIS) land on our tiles. ``TopLeftCorner`` is
in the CRS's own axis order: latitude first for EPSG:4490 (``90 -180``), easting first for 3857.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from layers.tiles.matrixsets import CGCS2000_QUAD, TIANDITU_WEB_MERCATOR, get_tms

WMTS_NS = "http://www.opengis.net/wmts/1.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = (
    "http://www.opengis.net/wmts/1.0 http://schemas.opengis.net/wmts/1.0/wmtsGetCapabilities_response.xsd"
)
OWS_SCHEMA = "http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd"
XML_TYPE = "application/xml"

for _prefix, _uri in (("", WMTS_NS), ("ows", OWS_NS), ("xlink", XLINK_NS), ("xsi", XSI_NS)):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class MatrixSetDef:
    identifier: str  # the WMTS TileMatrixSet identifier
    tms_id: str  # ours
    crs: str
    well_known: str | None = None


MATRIX_SETS: tuple[MatrixSetDef, ...] = (
    MatrixSetDef("c", CGCS2000_QUAD, "urn:ogc:def:crs:EPSG::4490"),
    MatrixSetDef("w", TIANDITU_WEB_MERCATOR, "urn:ogc:def:crs:EPSG::3857"),
    MatrixSetDef(
        "WebMercatorQuad",
        "WebMercatorQuad",
        "urn:ogc:def:crs:EPSG::3857",
        "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible",
    ),
)
BY_IDENTIFIER = {m.identifier: m for m in MATRIX_SETS}


@dataclass(frozen=True)
class WmtsLayer:
    identifier: str
    title: str
    abstract: str
    bbox: tuple[float, float, float, float] | None  # CRS84
    styles: tuple[tuple[str, str], ...]  # (identifier, title); the first is the default
    formats: tuple[str, ...]  # media types
    templates: dict[str, str]  # media type -> ResourceURL template
    limits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # set identifier -> limits


def _ows(tag: str) -> str:
    return f"{{{OWS_NS}}}{tag}"


def _wmts(tag: str) -> str:
    return f"{{{WMTS_NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def number(value: float) -> str:
    """A coordinate as WMTS documents write it (``-20037508.3427892``, ``90``)."""
    return format(value, ".15g")


def _operation(parent: ET.Element, name: str, href: str, encodings: tuple[str, ...]) -> None:
    op = _sub(parent, _ows("Operation"), name=name)
    http = _sub(_sub(op, _ows("DCP")), _ows("HTTP"))
    get = _sub(http, _ows("Get"), **{f"{{{XLINK_NS}}}href": href})
    constraint = _sub(get, _ows("Constraint"), name="GetEncoding")
    allowed = _sub(constraint, _ows("AllowedValues"))
    for encoding in encodings:
        _sub(allowed, _ows("Value"), encoding)


def _layer(contents: ET.Element, layer: WmtsLayer) -> None:
    element = _sub(contents, _wmts("Layer"))
    _sub(element, _ows("Title"), layer.title)
    if layer.abstract:
        _sub(element, _ows("Abstract"), layer.abstract)
    if layer.bbox:
        box = _sub(element, _ows("WGS84BoundingBox"))
        _sub(box, _ows("LowerCorner"), f"{number(layer.bbox[0])} {number(layer.bbox[1])}")
        _sub(box, _ows("UpperCorner"), f"{number(layer.bbox[2])} {number(layer.bbox[3])}")
    _sub(element, _ows("Identifier"), layer.identifier)
    for i, (style_id, style_title) in enumerate(layer.styles):
        style = _sub(element, _wmts("Style"), isDefault="true" if i == 0 else "false")
        _sub(style, _ows("Title"), style_title)
        _sub(style, _ows("Identifier"), style_id)
    for media in layer.formats:
        _sub(element, _wmts("Format"), media)
    for matrix_set in MATRIX_SETS:
        link = _sub(element, _wmts("TileMatrixSetLink"))
        _sub(link, _wmts("TileMatrixSet"), matrix_set.identifier)
        limits = layer.limits.get(matrix_set.identifier)
        if limits:
            limits_element = _sub(link, _wmts("TileMatrixSetLimits"))
            for entry in limits:
                tm = _sub(limits_element, _wmts("TileMatrixLimits"))
                _sub(tm, _wmts("TileMatrix"), entry["tileMatrix"])
                for name in ("MinTileRow", "MaxTileRow", "MinTileCol", "MaxTileCol"):
                    _sub(tm, _wmts(name), str(entry[name[0].lower() + name[1:]]))
    for media, template in layer.templates.items():
        _sub(element, _wmts("ResourceURL"), format=media, resourceType="tile", template=template)


def _matrix_set(contents: ET.Element, definition: MatrixSetDef) -> None:
    tms = get_tms(definition.tms_id)
    element = _sub(contents, _wmts("TileMatrixSet"))
    _sub(element, _ows("Title"), tms.title or definition.identifier)
    _sub(element, _ows("Identifier"), definition.identifier)
    _sub(element, _ows("SupportedCRS"), definition.crs)
    if definition.well_known:
        _sub(element, _wmts("WellKnownScaleSet"), definition.well_known)
    for z in range(tms.minzoom, tms.maxzoom + 1):
        matrix = tms.matrix(z)
        tm = _sub(element, _wmts("TileMatrix"))
        _sub(tm, _ows("Identifier"), matrix.id)
        _sub(tm, _wmts("ScaleDenominator"), repr(float(matrix.scaleDenominator)))
        _sub(tm, _wmts("TopLeftCorner"), " ".join(number(v) for v in matrix.pointOfOrigin))
        _sub(tm, _wmts("TileWidth"), str(matrix.tileWidth))
        _sub(tm, _wmts("TileHeight"), str(matrix.tileHeight))
        _sub(tm, _wmts("MatrixWidth"), str(matrix.matrixWidth))
        _sub(tm, _wmts("MatrixHeight"), str(matrix.matrixHeight))


def capabilities(
    title: str, abstract: str, kvp_url: str, rest_capabilities_url: str, layers: list[WmtsLayer]
) -> bytes:
    """The GetCapabilities response. ``kvp_url`` ends in ``?`` or ``&`` (the key rides along)."""
    root = ET.Element(_wmts("Capabilities"), {"version": "1.0.0", f"{{{XSI_NS}}}schemaLocation": SCHEMA})
    ident = _sub(root, _ows("ServiceIdentification"))
    _sub(ident, _ows("Title"), title)
    if abstract:
        _sub(ident, _ows("Abstract"), abstract)
    _sub(ident, _ows("ServiceType"), "OGC WMTS")
    _sub(ident, _ows("ServiceTypeVersion"), "1.0.0")
    operations = _sub(root, _ows("OperationsMetadata"))
    _operation(operations, "GetCapabilities", kvp_url, ("KVP",))
    _operation(operations, "GetTile", kvp_url, ("KVP",))
    contents = _sub(root, _wmts("Contents"))
    for layer in layers:
        _layer(contents, layer)
    for definition in MATRIX_SETS:
        _matrix_set(contents, definition)
    _sub(root, _wmts("ServiceMetadataURL"), **{f"{{{XLINK_NS}}}href": rest_capabilities_url})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def exception_report(code: str, text: str, locator: str | None = None) -> bytes:
    """An OWS 1.1 ExceptionReport with one exception."""
    root = ET.Element(
        _ows("ExceptionReport"),
        {"version": "1.0.0", "{http://www.w3.org/XML/1998/namespace}lang": "en",
         f"{{{XSI_NS}}}schemaLocation": OWS_SCHEMA},
    )  # fmt: skip
    attrs = {"exceptionCode": code, **({"locator": locator} if locator else {})}
    exception = _sub(root, _ows("Exception"), **attrs)
    _sub(exception, _ows("ExceptionText"), text)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
