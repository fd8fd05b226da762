"""``geoshare address import``: a real city's address register into ``addr``, on a real PostGIS.

The files are written at test time from the small demo city's own addresses (so every expected
value is the demo's), plus rows that must be rejected. Imports run in a transaction that is
rolled back; the CLI tests commit, and the module restores the demo city at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import typer
from sqlalchemy import Connection, Engine, text
from typer.testing import CliRunner

from geocode.addressdb.columns import ColumnMapping
from geocode.addressdb.importing import ImportRefused, ImportReport, import_address_file
from geocode.addressdb.importing.rows import parse_buildings, parse_doors
from geocode.addressdb.load import replace_address_database
from layers.crs import wgs84_to_gcj02
from layers.errors import InvalidInput

DISTRICTS = ("110101", "110102")  # 东城区, 西城区: a few hundred demo addresses
HEADERS = {
    "district": "区县",
    "street": "街道",
    "community": "社区",
    "road": "道路",
    "door": "门牌号",
    "compound": "小区",
    "building": "楼栋",
    "floors": "层数",
    "lon": "经度",
    "lat": "纬度",
}


@pytest.fixture(scope="module", autouse=True)
def restore_demo(address_db: Engine, demo_city) -> Iterator[None]:  # noqa: ANN001
    """The CLI tests commit: put the demo city back for the modules that run after this one."""
    yield
    with address_db.begin() as conn:
        replace_address_database(conn, **demo_city.address_tables())
        conn.execute(text("DELETE FROM gs.setting WHERE key = 'addressdb_import'"))


@pytest.fixture(scope="module")
def demo(address_db: Engine) -> pd.DataFrame:
    """The demo's own addresses of two districts, with everything an expectation needs."""
    with address_db.connect() as conn:
        frame = pd.read_sql(
            text(
                "SELECT a.address_code, a.level, a.district_code, a.district, a.street, a.community, "
                "a.community_code, a.road, a.door_number, a.door_suffix, a.compound, a.building_number, "
                "a.floors, a.full_address, ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat, "
                "(SELECT count(*) FROM addr.division d WHERE d.parent_code = c.parent_code "
                " AND d.short_name = c.short_name) AS same_name "
                "FROM addr.address a JOIN addr.division c ON c.code = a.community_code "
                "WHERE a.district_code = ANY(:districts) ORDER BY a.address_code"
            ).bindparams(districts=list(DISTRICTS)),
            conn,
        )
    assert 150 < len(frame) < 2000, len(frame)
    return frame


def _door(number: int, suffix: str | None, style: int) -> str:
    suffix = suffix or ""
    if suffix in ("甲", "乙", "丙", "丁"):
        return f"{suffix}{number}号"
    text_ = f"{number}{suffix}号"
    if style == 1:  # full-width digits
        return text_.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))
    if style == 2 and not suffix:
        return str(number)  # no 号
    return text_


def _table(demo: pd.DataFrame, lon: np.ndarray | None = None, lat: np.ndarray | None = None) -> pd.DataFrame:
    """The demo rows as a city office would export them, with the usual variations of names."""
    i = np.arange(len(demo))
    community = demo["community"].to_numpy(dtype=object)
    community = np.where(
        (i % 3 == 1) & pd.Series(community).str.endswith("社区"), community + "居委会", community
    )
    street = demo["street"].to_numpy(dtype=object)
    street = np.where(i % 4 == 1, pd.Series(street).str.replace(r"(街道|地区)$", "", regex=True), street)
    district = np.where(i % 5 == 2, demo["district"].str[:-1], demo["district"])
    building = (
        demo["building_number"].map(lambda b: "" if pd.isna(b) else f"{int(b)}号楼").to_numpy(dtype=object)
    )
    building = np.where(
        (i % 2 == 0) & (building != ""), [b.replace("号楼", "栋") for b in building], building
    )
    return pd.DataFrame(
        {
            HEADERS["district"]: district,
            HEADERS["street"]: street,
            HEADERS["community"]: community,
            HEADERS["road"]: demo["road"],
            HEADERS["door"]: [
                _door(int(n), s, k % 3)
                for k, (n, s) in enumerate(zip(demo["door_number"], demo["door_suffix"], strict=True))
            ],
            HEADERS["compound"]: demo["compound"].fillna(""),
            HEADERS["building"]: building,
            HEADERS["floors"]: demo["floors"].map(lambda f: "" if pd.isna(f) else str(int(f))),
            HEADERS["lon"]: [repr(float(v)) for v in (demo["lon"] if lon is None else lon)],
            HEADERS["lat"]: [repr(float(v)) for v in (demo["lat"] if lat is None else lat)],
        }
    )


BAD_ROWS = {  # problem → what to change in a copy of a good row
    "no_door_number": {"门牌号": "无"},
    "outside_city": {"经度": "121.4737", "纬度": "31.2304", "区县": "", "街道": "", "社区": ""},
    "district_contradicts_location": {"区县": "延庆区", "街道": "", "社区": ""},
    "bad_coordinates": {"经度": "abc"},
    "no_road": {"道路": ""},
}


def _with_bad_rows(good: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """``good`` with the bad rows spread through it; returns the frame and line → expected problem."""
    rows = [good.iloc[[k]] for k in range(len(good))]
    inserts: list[tuple[int, pd.DataFrame, str]] = []
    for k, (problem, change) in enumerate(BAD_ROWS.items()):
        bad = good.iloc[[3 + k]].copy()
        for col, value in change.items():
            bad[col] = value
        inserts.append((10 + 17 * k, bad, problem))
    inserts.append((len(good) - 2, good.iloc[[5]].copy(), "duplicate"))  # a copy of line 7
    for at, frame, _ in sorted(inserts, key=lambda x: x[0], reverse=True):
        rows.insert(at, frame)
    # the header is line 1; ``at`` good rows and the bad rows inserted earlier precede each one
    expected = {at + k + 2: problem for k, (at, _, problem) in enumerate(sorted(inserts, key=lambda x: x[0]))}
    return pd.concat(rows, ignore_index=True), expected


def _csv(frame: pd.DataFrame, path: Path, encoding: str) -> Path:
    path.write_bytes(frame.to_csv(index=False).encode(encoding))
    return path


def _import(conn: Connection, path: Path, **kwargs: object) -> ImportReport:
    return import_address_file(conn, path, **kwargs)  # type: ignore[arg-type]


def _imported(conn: Connection) -> pd.DataFrame:
    return pd.read_sql(
        text(
            "SELECT address_code, level, full_address, community_code, road_id, road, district_code, "
            "door_number, door_suffix, side, road_position, compound_id, building_id, "
            "ST_X(geom) AS lon, ST_Y(geom) AS lat FROM addr.address"
        ),
        conn,
    )


def _checksum(engine: Engine) -> tuple:
    with engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT (SELECT md5(string_agg(address_code || road_id || full_address "
                    "        || ST_AsText(geom), ',' ORDER BY address_code)) FROM addr.address),"
                    " (SELECT count(*) FROM addr.road), (SELECT count(*) FROM addr.compound),"
                    " (SELECT count(*) FROM addr.building), (SELECT count(*) FROM addr.division),"
                    " (SELECT value->>'version' FROM gs.setting WHERE key = 'addressdb')"
                )
            ).one()
        )


def _metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    dx = np.radians(lon2 - lon1) * np.cos(np.radians((lat1 + lat2) / 2))
    return 6_371_000 * np.hypot(dx, np.radians(lat2 - lat1))


# --- columns and parsing ----------------------------------------------------------------------


def test_columns_default_aliases_and_overrides(tmp_path: Path) -> None:
    chinese = ["区县", "街道", "社区居委会", "街路巷", "门牌号", "小区名称", "楼号", "经度", "纬度"]
    found = ColumnMapping().resolve(chinese)
    assert found["district"] == "区县" and found["community"] == "社区居委会" and found["road"] == "街路巷"
    assert found["door"] == "门牌号" and found["building"] == "楼号" and found["lon"] == "经度"
    english = ColumnMapping().resolve([" District ", "Road", "door_number", "LNG", "Lat"])
    assert english == {
        "district": " District ",
        "road": "Road",
        "door": "door_number",
        "lon": "LNG",
        "lat": "Lat",
    }
    mapped = ColumnMapping.from_options(None, ["door=门牌", "compound="]).resolve(
        ["路", "门牌", "小区", "x", "y"]
    )
    assert mapped["door"] == "门牌" and "compound" not in mapped and mapped["lon"] == "x"
    toml = tmp_path / "mapping.toml"
    toml.write_text('[columns]\nroad = "道路名"\ndoor = "门址号"\n', encoding="utf-8")
    assert ColumnMapping.from_options(toml).resolve(["道路名", "门址号", "lon", "lat"])["road"] == "道路名"

    with pytest.raises(InvalidInput) as missing:
        ColumnMapping().resolve(["道路", "备注", "经度", "纬度"])
    assert (
        missing.value.field == "door"
        and "'备注'" in missing.value.detail
        and "'道路'" in missing.value.detail
    )
    assert ColumnMapping().resolve(["道路", "门牌"], has_geometry=True) == {"road": "道路", "door": "门牌"}
    with pytest.raises(InvalidInput, match="unknown field 'doorr'"):
        ColumnMapping.from_options(None, ["doorr=门牌"])
    with pytest.raises(InvalidInput, match="no such column"):
        ColumnMapping.from_options(None, ["door=门牌"]).resolve(["道路", "门牌号", "x", "y"])


def test_door_and_building_parsing() -> None:
    good = ["甲12号", "12号", "12-1号", "12之1号", "１２号", "22", "二十二号"]
    doors = parse_doors(pd.Series([*good, None, "无", "0号", "10000号", "12-10号"]))
    assert doors["number"].tolist()[:7] == [12, 12, 12, 12, 12, 22, 22]
    assert doors["suffix"].tolist()[:7] == ["甲", "", "-1", "之1", "", "", ""]
    assert doors["problem"].tolist()[7:] == [
        "no_door_number",
        "no_door_number",
        "door_number_out_of_range",
        "door_number_out_of_range",
        "unsupported_door_suffix",
    ]
    buildings = parse_buildings(pd.Series(["3号楼", "3", "3栋", "三号楼", None, "A座", "1000"]))
    assert (
        buildings["number"].tolist()[:4] == [3, 3, 3, 3]
        and buildings["number"].isna().tolist()[4:] == [True] * 3
    )
    assert buildings["problem"].isna().tolist()[4:] == [True, False, False]
    assert set(buildings["problem"].iloc[5:]) == {"bad_building_number"}


# --- imports ------------------------------------------------------------------------------------


def test_gbk_import_with_bad_rows(address_db: Engine, demo: pd.DataFrame, tmp_path: Path) -> None:
    from geocode.index import load_index
    from geocode.match import geocode

    frame, expected = _with_bad_rows(_table(demo))
    path = _csv(frame, tmp_path / "门址.csv", "gbk")
    with address_db.connect() as conn, conn.begin() as tx:
        report = _import(conn, path, rejects_path=tmp_path / "rejects.csv", max_reject_rate=0.05)
        got = _imported(conn)
        orphans = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM addr.address a WHERE NOT EXISTS "
                "        (SELECT 1 FROM addr.road r WHERE r.id = a.road_id)),"
                " (SELECT count(*) FROM addr.address a WHERE a.compound_id IS NOT NULL AND NOT EXISTS "
                "        (SELECT 1 FROM addr.compound c WHERE c.id = a.compound_id)),"
                " (SELECT count(*) FROM addr.building b WHERE NOT EXISTS "
                "        (SELECT 1 FROM addr.compound c WHERE c.id = b.compound_id)),"
                " (SELECT count(*) FROM addr.address a JOIN addr.road r ON r.id = a.road_id "
                "  WHERE ST_Distance(a.geom::geography, r.geom::geography) > 400)"
            )
        ).one()
        index = load_index(conn)
        tx.rollback()
    assert report.encoding == "gbk" and report.format == "csv" and report.written
    assert (report.rows_read, report.accepted, report.rejected) == (len(frame), len(demo), len(expected))
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str, encoding="utf-8-sig")
    assert dict(zip(rejects["line"].astype(int), rejects["problem"], strict=True)) == expected
    dup_line = next(line for line, p in expected.items() if p == "duplicate")
    assert rejects.set_index("problem").loc["duplicate", "reason"] == "duplicate of line 7", dup_line
    assert report.by_reason == {p: 1 for p in expected.values()}
    reasons = rejects.set_index("problem")["reason"]
    assert (
        "延庆区" in reasons["district_contradicts_location"]
        and "km outside" in reasons["district_contradicts_location"]
    )
    assert "'abc'" in reasons["bad_coordinates"] and "'无'" in reasons["no_door_number"]

    # every row is the demo's own address again: same text, community, door part of the code
    assert len(got) == len(demo)
    mine = got.set_index("full_address")
    theirs = demo.set_index("full_address")
    assert sorted(mine.index) == sorted(theirs.index)
    unique = theirs[theirs["same_name"] == 1].index
    assert (mine.loc[unique, "community_code"] == theirs.loc[unique, "community_code"]).all()
    assert (mine["address_code"].str[16:] == theirs.loc[mine.index, "address_code"].str[16:]).all()
    assert (mine["address_code"].str[:12] == mine["community_code"]).all()
    assert (
        _metres(mine["lon"], mine["lat"], theirs.loc[mine.index, "lon"], theirs.loc[mine.index, "lat"]) < 0.01
    ).all()
    assert (mine["level"] == theirs.loc[mine.index, "level"]).all()

    # what the geocoder relies on
    assert orphans == (0, 0, 0, 0)
    assert got["road_position"].between(0, 1).all()
    assert ((got["door_number"] % 2 == 1) == (got["side"] == "L")).all()
    for full, code in (
        got[["full_address", "address_code"]].iloc[:: max(1, len(got) // 40)].itertuples(index=False)
    ):
        best = geocode(index, full).best
        assert best is not None and best.address_code == code, full


def test_shuffled_utf8_bom_reimport_is_stable(address_db: Engine, demo: pd.DataFrame, tmp_path: Path) -> None:
    table = _table(demo)
    first = _csv(table, tmp_path / "a.csv", "utf-8-sig")
    shuffled = _csv(table.sample(frac=1.0, random_state=7), tmp_path / "b.csv", "utf-8-sig")
    runs = []
    for path in (first, shuffled):
        with address_db.connect() as conn, conn.begin() as tx:
            report = _import(conn, path)
            codes = dict(conn.execute(text("SELECT full_address, address_code FROM addr.address")).all())
            roads = dict(
                conn.execute(
                    text("SELECT district_code || name, road_code || '/' || id FROM addr.road")
                ).all()
            )
            tx.rollback()
        assert report.encoding == "utf-8" and report.rejected == 0
        runs.append((codes, roads))
    assert len(runs[0][0]) == len(demo)
    assert runs[0] == runs[1]
    assert len(set(runs[0][1].values())) == len(runs[0][1])


def test_geopackage_points_and_feature_numbers(
    address_db: Engine, demo: pd.DataFrame, tmp_path: Path
) -> None:
    table = _table(demo).rename(columns={v: k for k, v in HEADERS.items()})
    table = table.drop(columns=["lon", "lat"])
    table.loc[3, "door"] = ""
    geoms = shapely.points(demo["lon"].to_numpy(), demo["lat"].to_numpy())
    geoms[8] = shapely.LineString([(116.4, 39.9), (116.41, 39.91)])
    path = tmp_path / "addresses.gpkg"
    gpd.GeoDataFrame(table, geometry=geoms, crs=4326).to_file(path, driver="GPKG")
    with address_db.connect() as conn, conn.begin() as tx:
        with pytest.raises(ImportRefused) as refused:
            _import(conn, path, max_reject_rate=0.0, rejects_path=tmp_path / "r.csv")
        report = _import(conn, path)
        count = conn.execute(text("SELECT count(*) FROM addr.address")).scalar()
        tx.rollback()
    assert refused.value.report.rejected == 2 and not refused.value.report.written
    assert report.format == "gpkg" and report.accepted == count == len(demo) - 2
    rejects = pd.read_csv(tmp_path / "r.csv", dtype=str)
    assert rejects["line"].tolist() == ["4", "9"]
    assert rejects["problem"].tolist() == ["no_door_number", "bad_coordinates"]
    assert "LineString" in rejects["reason"].iloc[1]


def test_gcj02_coordinates_land_on_the_wgs84_truth(
    address_db: Engine, demo: pd.DataFrame, tmp_path: Path
) -> None:
    gcj = wgs84_to_gcj02(demo[["lon", "lat"]].to_numpy())
    assert _metres(gcj[:, 0], gcj[:, 1], demo["lon"], demo["lat"]).min() > 100  # really shifted
    path = _csv(_table(demo, gcj[:, 0], gcj[:, 1]), tmp_path / "gcj.csv", "utf-8")
    with address_db.connect() as conn, conn.begin() as tx:
        report = _import(conn, path, crs="GCJ-02")
        got = _imported(conn).set_index("full_address")
        tx.rollback()
    assert report.crs == "GCJ-02" and report.rejected == 0
    truth = demo.set_index("full_address").loc[got.index]
    assert _metres(got["lon"], got["lat"], truth["lon"], truth["lat"]).max() < 1.0


def test_names_codes_and_location(address_db: Engine, demo: pd.DataFrame, tmp_path: Path) -> None:
    """Former district names and codes resolve; without any division column, the location does."""
    table = _table(demo)
    table["区县"] = np.where(demo["district_code"] == "110101", "崇文区", "宣武区")  # merged in 2010
    path = _csv(table, tmp_path / "old.csv", "utf-8")
    coded = table.drop(columns=["区县", "街道", "社区"]).assign(社区代码=demo["community_code"])
    coded_path = _csv(coded, tmp_path / "coded.csv", "utf-8")
    bare = _csv(table.drop(columns=["区县", "街道", "社区"]), tmp_path / "bare.csv", "utf-8")
    with address_db.connect() as conn, conn.begin() as tx:
        old = _import(conn, path)
        by_old = _imported(conn).set_index("full_address")["community_code"]
        _import(conn, coded_path)
        by_code = _imported(conn).set_index("full_address")["community_code"]
        located = _import(conn, bare)
        inside = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE ST_Intersects(d.geom, a.geom)), count(*) "
                "FROM addr.address a JOIN addr.division d ON d.code = a.district_code"
            )
        ).one()
        tx.rollback()
    truth = demo[demo["same_name"] == 1].set_index("full_address")["community_code"]
    assert old.rejected == 0 and (by_old.loc[truth.index] == truth).all()
    assert (by_code.loc[truth.index] == truth).all()
    assert located.rejected == 0 and not located.columns.keys() & {"district", "street", "community"}
    assert inside[0] == inside[1] == len(demo)


def test_named_district_wins_near_its_border(address_db: Engine, demo: pd.DataFrame, tmp_path: Path) -> None:
    """A point within CONTRADICTION_M of the district it names belongs to that district."""
    with address_db.connect() as conn:
        near = conn.execute(
            text(
                "SELECT a.address_code, d.code, d.name, ST_Distance(d.geom::geography, a.geom::geography) "
                "FROM addr.address a JOIN addr.division d ON d.level = 3 AND d.code <> a.district_code "
                "AND ST_DWithin(d.geom::geography, a.geom::geography, 300) "
                "WHERE a.district_code = ANY(:d) ORDER BY 4 DESC, 1 LIMIT 1"
            ),
            {"d": list(DISTRICTS)},
        ).one()
    assert near[3] > 0  # really outside the district it will name
    table = _table(demo)
    at = int(np.flatnonzero(demo["address_code"] == near[0])[0])
    table.loc[at, ["区县", "街道", "社区"]] = [near[2], "", ""]
    path = _csv(table, tmp_path / "border.csv", "utf-8")
    with address_db.connect() as conn, conn.begin() as tx:
        report = _import(conn, path)
        got = _imported(conn)
        tx.rollback()
    assert report.rejected == 0
    lon, lat = demo.loc[at, ["lon", "lat"]]
    row = got[(_metres(got["lon"], got["lat"], lon, lat) < 0.01) & (got["road"] == demo.loc[at, "road"])]
    assert row["district_code"].tolist() == [near[1]]


def test_too_many_rejects_change_nothing(address_db: Engine, demo: pd.DataFrame, tmp_path: Path) -> None:
    frame, expected = _with_bad_rows(_table(demo))
    path = _csv(frame, tmp_path / "bad.csv", "utf-8")
    before = _checksum(address_db)
    # the transaction would commit, but the import raises first
    with address_db.connect() as conn, conn.begin(), pytest.raises(ImportRefused) as refused:
        _import(conn, path, max_reject_rate=0.001, rejects_path=tmp_path / "r.csv")
    assert refused.value.report.rejected == len(expected) and not refused.value.report.written
    assert len(pd.read_csv(tmp_path / "r.csv")) == len(expected)
    assert _checksum(address_db) == before


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    from geoshare.cli import address

    return address.app


def test_cli_import_end_to_end(
    address_db: Engine, cli: typer.Typer, demo: pd.DataFrame, tmp_path: Path
) -> None:
    frame, expected = _with_bad_rows(_table(demo))
    path = _csv(frame, tmp_path / "地址.csv", "gbk")
    before = _checksum(address_db)

    refused = CliRunner().invoke(cli, ["import", str(path), "--max-reject-rate", "0.001"])
    assert refused.exit_code == 1, refused.output
    assert "import refused" in refused.output and _checksum(address_db) == before
    rejects = tmp_path / "地址-rejects.csv"
    assert str(rejects) in refused.output and len(pd.read_csv(rejects)) == len(expected)

    dry = CliRunner().invoke(cli, ["import", str(path), "--max-reject-rate", "0.05", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and _checksum(address_db) == before

    done = CliRunner().invoke(
        cli,
        [
            "import",
            str(path),
            "--max-reject-rate",
            "0.05",
            "--encoding",
            "gbk",
            "--rejects",
            str(tmp_path / "r.csv"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert (
        f"{len(demo):,}" in done.output
        and "duplicate" in done.output
        and str(tmp_path / "r.csv") in done.output
    )
    with address_db.connect() as conn:
        count, setting = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM addr.address),"
                " (SELECT value->>'file' FROM gs.setting WHERE key = 'addressdb_import')"
            )
        ).one()
    assert count == len(demo) and setting == path.name and _checksum(address_db) != before


def test_cli_missing_column(cli: typer.Typer, demo: pd.DataFrame, tmp_path: Path) -> None:
    path = _csv(_table(demo).drop(columns=["门牌号"]), tmp_path / "no_door.csv", "utf-8")
    r = CliRunner().invoke(cli, ["import", str(path)])
    assert r.exit_code == 2 and "door" in r.output and "'道路'" in r.output and "Traceback" not in r.output
    mapped = CliRunner().invoke(cli, ["import", str(path), "--column", "door=楼栋", "--dry-run"])
    assert mapped.exit_code == 1 and "no_door_number" in mapped.output  # most rows have no building
