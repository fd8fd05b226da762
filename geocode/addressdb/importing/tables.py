"""Building the five ``addr`` tables from checked rows."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geocode.addressdb.codes import address_codes
from geocode.addressdb.importing.divisions import (
    DivisionIndex,
    Placed,
    _keys,
    _transform,
    name_key,
    resolve_divisions,
    utm_crs,
)
from geocode.addressdb.importing.reading import BUILDING_HALF_M, COMPOUND_BUFFER_M, RawAddresses
from geocode.addressdb.importing.roads import road_axes, road_codes
from geocode.addressdb.importing.rows import Verdicts, door_text, parse_buildings, parse_doors
from geocode.addressdb.load import ADDRESSES, BUILDINGS, COMPOUNDS, ROADS
from geocode.addressdb.steps import Progress, Steps
from layers.errors import InvalidInput


def _check_rows(raw: RawAddresses, index: DivisionIndex, verdicts: Verdicts) -> pd.DataFrame:
    """Province/city, door, building and road of every row: the parsed values, rejects noted."""
    f, n = raw.fields, len(raw)
    for col, own in (("province", (index.province,)), ("city", (index.city, index.province, "市辖区"))):
        if col in f:
            keys = _keys(f[col], 1)
            fine = {name_key(o, 1) for o in own}
            wrong = f[col].notna().to_numpy() & ~np.isin(keys, list(fine))
            values = f[col].to_numpy(dtype=object)
            verdicts.reject(
                wrong,
                "wrong_city",
                lambda i, c=col, v=values, o=own[0]: [f"{c} {v[j]!r} is not {o}" for j in i],
            )
    doors = parse_doors(f["door"])
    if "building" in f:
        buildings = parse_buildings(f["building"])
    else:
        buildings = pd.DataFrame({"number": [None] * n, "problem": None, "reason": None})
    for parsed in (doors, buildings):
        problems = parsed["problem"].to_numpy(dtype=object)
        for problem in pd.unique(problems[~pd.isna(problems)]):
            verdicts.reject(problems == problem, str(problem), parsed["reason"].to_numpy(dtype=object))
    verdicts.reject(f["road"].isna().to_numpy(), "no_road", "the road is empty")
    out = pd.DataFrame(
        {
            "door_number": pd.array(doors["number"].to_numpy(), dtype="Int64"),
            "door_suffix": doors["suffix"].to_numpy(dtype=object),
            "building_number": pd.array(buildings["number"].to_numpy(), dtype="Int64"),
        }
    )
    for col in ("units", "floors"):
        values = pd.to_numeric(f[col], errors="coerce") if col in f else pd.Series(np.nan, index=f.index)
        values = values.where((values > 0) & (values % 1 == 0) & (values < 1000))
        out[col] = values.astype("Int64").to_numpy()
    return out


def _reject_duplicates(codes: np.ndarray, rows: np.ndarray, raw: RawAddresses, verdicts: Verdicts) -> None:
    series = pd.Series(codes)
    dup = series.duplicated().to_numpy()
    if dup.any():
        first = pd.Series(raw.line[rows]).groupby(series).transform("first").to_numpy()
        mask = np.zeros(len(raw), dtype=bool)
        mask[rows[dup]] = True
        at = {r: i for i, r in enumerate(rows)}
        verdicts.reject(mask, "duplicate", lambda i: [f"duplicate of {raw.unit} {first[at[j]]}" for j in i])


def _wgs84_frame(frame: pd.DataFrame, geoms: np.ndarray, back: Transformer) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame, geometry=_transform(geoms, back), crs=4326).rename_geometry("geom")


def _no_tables() -> dict[str, gpd.GeoDataFrame]:
    """Empty frames (nothing accepted): the import is refused, but the report still has counts."""
    return {
        key: gpd.GeoDataFrame({c: [] for c in spec.columns if c != "geom"}, geometry=[], crs=4326)
        for key, spec in (
            ("roads", ROADS),
            ("compounds", COMPOUNDS),
            ("buildings", BUILDINGS),
            ("addresses", ADDRESSES),
        )
    }


def build_tables(
    raw: RawAddresses, divisions: gpd.GeoDataFrame, progress: Progress | None = None
) -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame]:
    """The five frames for :func:`replace_address_database` (divisions passed through unchanged)
    and the rejected rows (``line``, ``problem``, ``reason`` and the row's original values)."""
    steps = Steps(progress)
    if divisions.empty:
        raise InvalidInput("the address database has no divisions to place addresses in", field="divisions")
    minx, miny, maxx, maxy = divisions.total_bounds
    utm = utm_crs((minx + maxx) / 2, (miny + maxy) / 2)
    to_utm = Transformer.from_crs(4326, utm, always_xy=True)
    back = Transformer.from_crs(utm, 4326, always_xy=True)
    with steps.step("place rows in divisions"):
        index = DivisionIndex(divisions, utm)
        verdicts = Verdicts(raw.problem, raw.reason)
        parsed = _check_rows(raw, index, verdicts)
        x, y = to_utm.transform(raw.lon, raw.lat)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        pts = np.full(len(raw), None, dtype=object)
        finite = np.isfinite(x) & np.isfinite(y)
        pts[finite] = shapely.points(x[finite], y[finite])
        placed = resolve_divisions(raw.fields, pts, index, verdicts)

    rows = np.flatnonzero(verdicts.ok)
    tables = _no_tables()
    if len(rows):
        with steps.step("address codes"):
            district_code = index.code[placed.district[rows]]
            road_name = raw.fields["road"].to_numpy(dtype=object)[rows]
            road_ix, road_keys = pd.factorize(pd.Series(district_code + "\x1f" + road_name), sort=True)
            unique_district = np.array([k.split("\x1f", 1)[0] for k in road_keys], dtype=object)
            unique_name = np.array([k.split("\x1f", 1)[1] for k in road_keys], dtype=object)
            code_of_road = road_codes(unique_district, unique_name)
            p = parsed.iloc[rows]
            codes = address_codes(
                pd.Series(index.code[placed.community[rows]]),
                pd.Series(code_of_road[road_ix]),
                p["door_number"].to_numpy(dtype=np.int64),
                p["door_suffix"].reset_index(drop=True),
                p["building_number"].reset_index(drop=True),
            )
            _reject_duplicates(codes, rows, raw, verdicts)

        with steps.step("roads, compounds and buildings"):
            keep = verdicts.ok[rows]
            rows, codes, road_ix = rows[keep], codes[keep], road_ix[keep]
            tables = _assemble(
                raw,
                index,
                parsed.iloc[rows].reset_index(drop=True),
                placed,
                rows,
                codes,
                road_ix,
                (unique_district, unique_name, code_of_road),
                x[rows],
                y[rows],
                back,
            )
    tables["divisions"] = divisions
    bad = np.flatnonzero(~verdicts.ok)
    rejects = pd.DataFrame(
        {"line": raw.line[bad], "problem": verdicts.problem[bad], "reason": verdicts.reason[bad]}
    )
    original = raw.original.iloc[bad].reset_index(drop=True)
    original.columns = [c if c not in rejects.columns else f"{c} (file)" for c in original.columns]
    return tables, pd.concat([rejects, original], axis=1)


def _assemble(
    raw: RawAddresses,
    index: DivisionIndex,
    p: pd.DataFrame,
    placed: Placed,
    rows: np.ndarray,
    codes: np.ndarray,
    road_ix: np.ndarray,
    roads_found: tuple[np.ndarray, np.ndarray, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    back: Transformer,
) -> dict[str, gpd.GeoDataFrame]:
    f = raw.fields.iloc[rows].reset_index(drop=True)
    community, street, district = placed.community[rows], placed.street[rows], placed.district[rows]
    door = p["door_number"].to_numpy(dtype=np.int64)
    suffix = p["door_suffix"].to_numpy(dtype=object)

    # roads: only those with an accepted row, renumbered 0..R-1
    used, road_ix = np.unique(road_ix, return_inverse=True)
    unique_district, unique_name, code_of_road = (a[used] for a in roads_found)
    axes = road_axes(road_ix, x, y, door.astype(float))
    votes = pd.DataFrame({"road": road_ix, "street": index.code[street]}).value_counts().reset_index(name="n")
    votes = votes.sort_values(["road", "n", "street"], ascending=[True, False, True]).drop_duplicates("road")
    road_street = votes.sort_values("road")["street"].to_numpy(dtype=object)
    road_id = (road_street + code_of_road).astype(np.int64)
    roads = _wgs84_frame(
        pd.DataFrame(
            {
                "id": road_id,
                "road_code": code_of_road,
                "name": unique_name,
                "district_code": unique_district,
                "street_code": road_street,
                "road_class": "unknown",
                "length_m": axes.length,
            }
        ),
        axes.lines,
        back,
    )

    # compounds: one per (community, name); a building row without one gets "<road><door>院"
    doors_text = door_text(door, suffix)
    road_name = f["road"].to_numpy(dtype=object)
    has_building = p["building_number"].notna().to_numpy()
    compound = (
        f["compound"].to_numpy(dtype=object) if "compound" in f else np.full(len(f), None, dtype=object)
    )
    implicit = has_building & pd.isna(compound)
    compound = np.where(implicit, road_name + doors_text + "院", compound)
    in_compound = ~pd.isna(compound)
    ci = np.flatnonzero(in_compound)
    comp_ix, comp_keys = pd.factorize(
        pd.Series(index.code[community[ci]] + "\x1f" + compound[ci].astype(str)), sort=True
    )
    compound_id = np.full(len(f), -1, dtype=np.int64)
    compound_id[ci] = comp_ix + 1
    order = np.argsort(comp_ix, kind="stable")
    hulls = shapely.convex_hull(
        shapely.multipoints(np.column_stack([x[ci], y[ci]])[order], indices=comp_ix[order])
    )
    members = pd.DataFrame({"cid": comp_ix + 1, "road_id": road_id[road_ix[ci]], "door": door[ci]})
    main = (  # the compound's door: its most common one
        members.value_counts(["cid", "road_id", "door"])
        .reset_index(name="n")
        .sort_values(["cid", "n", "road_id", "door"], ascending=[True, False, True, True])
        .drop_duplicates("cid")
        .sort_values("cid")
    )
    comm_of = index.position(np.array([k.split("\x1f", 1)[0] for k in comp_keys], dtype=object))
    names = np.array([k.split("\x1f", 1)[1] for k in comp_keys], dtype=object)
    compounds = _wgs84_frame(
        pd.DataFrame(
            {
                "id": np.arange(1, len(comp_keys) + 1),
                "name": names,
                "kind": np.where([n.endswith("院") for n in names], "院", "小区"),
                "road_id": main["road_id"].to_numpy(),
                "door_number": main["door"].to_numpy(),
                "district_code": index.code[index.ancestor(comm_of, 3)],
                "street_code": index.code[index.ancestor(comm_of, 4)],
                "community_code": index.code[comm_of],
            }
        ),
        shapely.buffer(hulls, COMPOUND_BUFFER_M, quad_segs=4),
        back,
    )

    # buildings: one per (compound, number), a small square on its first point
    bi = np.flatnonzero(has_building)
    number = p["building_number"].to_numpy(dtype=object)
    building_id = np.full(len(f), -1, dtype=np.int64)
    building_id[bi] = compound_id[bi] * 1000 + number[bi].astype(np.int64)
    per = pd.DataFrame(
        {
            "id": building_id[bi],
            "compound_id": compound_id[bi],
            "number": number[bi].astype(np.int64),
            "floors": p["floors"].to_numpy()[bi],
            "units": p["units"].to_numpy()[bi],
            "x": x[bi],
            "y": y[bi],
            "code": codes[bi],
        }
    )  # several rows of one building (its doors): the smallest address code places it, whatever the order
    first = per.sort_values(["id", "code"]).groupby("id", sort=True).first().reset_index()
    h = BUILDING_HALF_M
    buildings = _wgs84_frame(
        pd.DataFrame(
            {
                "id": first["id"].to_numpy(),
                "compound_id": first["compound_id"].to_numpy(),
                "number": first["number"].to_numpy(),
                "name": first["number"].astype(str).to_numpy(dtype=object) + "号楼",
                "floors": first["floors"].astype("Int64").to_numpy(),
                "units": first["units"].astype("Int64").to_numpy(),
                "rooms_per_floor": pd.array([pd.NA] * len(first), dtype="Int64"),
            }
        ),
        shapely.box(first["x"] - h, first["y"] - h, first["x"] + h, first["y"] + h),
        back,
    )

    # addresses; full address as the demo writes it: 北京市 district street road door compound building
    stem = road_name + doors_text
    compound_part = np.full(len(f), "", dtype=object)  # 院 of "<road><door>院", else the compound's name
    compound_part[ci] = [
        c[len(s) :] if c.startswith(s) else c for c, s in zip(compound[ci], stem[ci], strict=True)
    ]
    numbers = np.where(has_building, number, 0).astype(np.int64).astype(str).astype(object)
    building_part = np.where(has_building, numbers + "号楼", "")
    top = index.province + ("" if index.city in ("", index.province) else index.city)
    province, city = index.ancestor(community, 1), index.ancestor(community, 2)
    full = top + index.name[district] + index.name[street] + stem + compound_part + building_part
    frame = pd.DataFrame(
        {
            "address_code": codes,
            "level": np.where(has_building, "building", "door"),
            "province_code": index.code[province],
            "province": index.name[province],
            "city_code": index.code[city],
            "city": index.name[city],
            "district_code": index.code[district],
            "district": index.name[district],
            "street_code": index.code[street],
            "street": index.name[street],
            "community_code": index.code[community],
            "community": index.short[community],
            "road_id": road_id[road_ix],
            "road": road_name,
            "door_number": door,
            "door_suffix": suffix,
            "side": np.where(door % 2 == 1, "L", "R"),
            "road_position": axes.position,
            "compound_id": pd.array(np.where(in_compound, compound_id, -1), dtype="Int64"),
            "compound": np.where(in_compound, compound, None),
            "building_id": pd.array(building_id, dtype="Int64"),
            "building_number": pd.array(np.where(has_building, number, None), dtype="Int64"),
            "units": p["units"].where(has_building).astype("Int64").to_numpy(),
            "floors": p["floors"].where(has_building).astype("Int64").to_numpy(),
            "rooms_per_floor": pd.array([pd.NA] * len(f), dtype="Int64"),
            "full_address": full,
        }
    )
    for col in ("compound_id", "building_id"):
        frame[col] = frame[col].mask(frame[col] < 0)
    addresses = gpd.GeoDataFrame(frame, geometry=shapely.points(raw.lon[rows], raw.lat[rows]), crs=4326)
    return {
        "roads": roads,
        "compounds": compounds,
        "buildings": buildings,
        "addresses": addresses.rename_geometry("geom"),
    }
