"""Chinese names: surname frequencies, given names by birth decade and sex, ethnic naming, desk confusions."""

from __future__ import annotations

import bisect
import itertools
import random

# Han surnames with approximate shares (‰) of the population (2020 household-registration ranking, the
# north-east tilted towards 王/李/张/刘 and away from 陈/黄/林).
_SURNAMES = (
    "王74 李72 张68 刘58 陈36 杨30 赵26 黄16 周18 吴16 徐15 孙20 马15 朱12 胡11 郭13 何9 高14 林7 罗7 "
    "郑9 梁9 谢6 宋10 唐7 许8 韩11 冯8 邓6 曹8 彭5 曾4 肖6 田9 董9 袁6 潘5 于12 蒋5 蔡5 余4 杜7 叶4 程5 "
    "苏6 魏7 吕7 丁6 任7 沈4 姚5 卢5 姜9 崔8 钟3 谭3 陆4 汪3 范5 金6 石5 廖2 贾5 夏3 韦2 付5 方4 白6 "
    "邹3 孟6 熊3 秦4 邱3 江3 尹4 薛4 闫5 段4 雷3 侯5 龙2 史4 陶3 黎2 贺3 顾3 毛3 郝4 龚2 邵4 万3 钱3 "
    "严3 覃1 武4 戴3 莫2 孔3 向2 汤3 常4 温3 康4 施2 文3 牛4 樊3 葛3 邢3 安3 齐4 易2 乔4 伍2 庞3 颜2 "
    "倪2 庄2 聂2 章2 鲁3 岳3 翟3 殷2 詹1 申2 欧2 耿3 关4 兰2 焦3 俞2 左2 柳2 甘1 祝2 包3 宁2 尚2 符1 "
    "舒1 阮1 柯1 纪2 梅1 童1 凌1 毕2 单2 季2 裴2 霍3 涂1 成2 苗2 谷2 盛1 曲3 翁1 冉1 骆1 蓝1 路2 游1 "
    "辛2 靳2 管2 柴2 蒙1 鲍2 华1 喻1 祁2 蒲1 房2 滕2 屈2 饶1 解2 牟2 艾1 尤1 阳1 时2 穆2 农1 司1 卓1 "
    "古1 吉1 缪1 简1 车2 项1 连1 芦2 麦1 褚1 娄2 窦2 戚1 岑1 景2 党2 宫2 费1 卜1 冷2 晏1 席1 卫1 米1 "
    "柏1 宗1 瞿1 桂1 全2 佟3 应1 臧2 闵1 苟1 邬1 边2 卞1 姬1 师1 和1 仇1 栾2 隋2 商1 刁1 沙1 荣1 巫1 "
    "寇1 桑1 郎2 甄1 丛2 仲1 虞1 敖1 巩1 明1 佘1 池1 查1 麻1 苑2 迟2 邝1"
)
# Compound surnames, rare (weights in 1/100 ‰).
_COMPOUND = {"欧阳": 8, "司马": 2, "上官": 2, "诸葛": 2, "东方": 1, "皇甫": 1, "令狐": 1, "慕容": 1, "尉迟": 1, "公孙": 1}


def _parse(spec: str) -> list[tuple[str, float]]:
    out = []
    for tok in spec.split():
        out.append((tok[0], float(tok[1:])))
    return out


class Choice:
    """Weighted choice with a precomputed cumulative table (fast, deterministic)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, pairs) -> None:
        pairs = list(pairs)
        self.items = [p[0] for p in pairs]
        self.cum = list(itertools.accumulate(p[1] for p in pairs))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


HAN_SURNAMES = Choice(_parse(_SURNAMES) + [(k, v / 100) for k, v in _COMPOUND.items()])
COMPOUND_SURNAMES = frozenset(_COMPOUND)
KOREAN_SURNAMES = Choice(_parse("金22 李15 朴10 崔7 郑5 姜4 赵3 尹3 张3 安3 韩3 申2 吴2 徐2 权2 黄2 宋2 全2 洪2 柳1 高1 文1 孙1 梁1 裴1 白1 许1 南1 沈1 卢1 河1 玄1 俞1 太1 方1"))
MANCHU_SURNAMES = Choice(_parse("关10 佟8 那6 富5 赵8 金6 王8 李6 张5 刘4 肖3 唐3 白3 郎3 鲁2 洪2 依2 吴2 傅2 常2"))
MONGOL_SURNAMES = Choice(_parse("包12 白8 宝6 韩5 于4 陈3 吴3 王4 李3 张3 鲍3 敖3 孟2 乌2 海2 金2 满2 胡2 邰2 何1"))
HUI_SURNAMES = Choice(_parse("马25 杨8 李7 王7 张6 刘5 白5 丁5 金4 沙3 海3 哈2 穆3 冯2 赵3 米2 回2 纳2"))

# Given-name characters by era and sex (what parents chose then). One- or two-character given names.
_GIVEN = {
    ("m", 1930): "福 贵 财 山 林 发 德 文 明 广 永 胜 富 海 春 国 玉 庆 宝 喜 有 成 才 堂 和 荣 祥",
    ("f", 1930): "秀 英 兰 桂 凤 珍 芝 淑 玉 荣 琴 云 霞 素 华 花 梅 翠 香 贞 娥 清",
    ("m", 1950): "建 国 军 华 平 明 卫 东 红 伟 志 强 庆 利 民 胜 生 忠 新 革 跃 进 辉 斌 林 波 刚",
    ("f", 1950): "秀 英 兰 华 芳 玉 红 霞 珍 凤 荣 淑 琴 萍 敏 丽 桂 春 梅 燕 英 云 莲",
    ("m", 1970): "伟 磊 勇 军 强 涛 斌 超 明 刚 平 辉 鹏 华 飞 鑫 波 宇 浩 亮 成 峰 杰 龙 东 志 建",
    ("f", 1970): "丽 静 敏 燕 艳 娟 霞 芳 玲 红 颖 莉 婷 雪 琳 洁 丹 慧 晶 萍 莹 梅 倩 华 杰",
    ("m", 1990): "浩 宇 鑫 磊 鹏 帅 超 昊 博 旭 晨 阳 涛 然 俊 杰 轩 凯 文 泽 天 明 思 嘉 子 睿 航",
    ("f", 1990): "婷 雪 静 佳 欣 悦 琪 颖 丽 璐 慧 晶 丹 倩 婧 怡 梦 雨 萌 月 娜 蕾 琳 思 佳 雅 瑶",
    ("m", 2005): "子 浩 宇 轩 然 梓 博 睿 泽 皓 俊 辰 一 鸿 涛 铭 昊 煜 航 嘉 晨 天 奕 哲 翔 锦",
    ("f", 2005): "子 欣 梓 涵 怡 雨 萱 可 诗 佳 一 琪 语 嘉 思 若 晨 馨 雅 彤 依 悦 妍 紫 曦 沐",
    ("m", 2015): "一 诺 宇 沐 辰 子 墨 宸 浩 宇 泽 睿 瑞 梓 航 铭 轩 景 煜 奕 安 承 知 言 翊",
    ("f", 2015): "一 诺 梓 萱 沐 汐 可 欣 若 曦 语 桐 依 晨 诗 涵 芷 若 安 然 书 瑶 知 夏 予 柠",
}
_GIVEN_SPLIT = {k: v.split() for k, v in _GIVEN.items()}
_ERAS = (1930, 1950, 1970, 1990, 2005, 2015)

_KOREAN_GIVEN = {
    "m": "英哲 成浩 明哲 东植 光日 永吉 昌洙 正男 哲浩 成日 龙洙 相俊 东赫 在贤 俊浩 宇哲 昌浩 京日 泰龙 成民".split(),
    "f": "美善 顺姬 英淑 明淑 贞子 春花 英爱 顺子 美玉 贤淑 恩惠 秀妍 智英 美兰 惠善 善花 英姬 仁淑 秀珍 敏珠".split(),
}
_MONGOL_GIVEN = {
    "m": "巴特尔 额尔敦 宝音 朝鲁 苏和 阿拉坦 巴雅尔 斯琴 那顺 孟和 达来 图门".split(),
    "f": "其其格 乌云 萨仁 娜仁 斯琴 托娅 高娃 塔娜 琪琪格 乌兰 阿茹娜 敖敦".split(),
}


def _era(year: int) -> int:
    return _ERAS[max(0, bisect.bisect_right(_ERAS, year) - 1)]


def given_name(rng: random.Random, sex: str, birth_year: int, ethnicity: str = "01") -> str:
    """A given name typical of the sex, birth era and ethnicity."""
    s = "m" if sex == "male" else "f"
    if ethnicity == "10" and rng.random() < 0.7:
        return rng.choice(_KOREAN_GIVEN[s])
    if ethnicity == "02" and rng.random() < 0.3:
        return rng.choice(_MONGOL_GIVEN[s])
    pool = _GIVEN_SPLIT[(s, _era(birth_year))]
    # Single-character given names were most common in the 1970s-80s.
    single = 0.45 if 1965 <= birth_year < 1995 else 0.2
    if rng.random() < single:
        return rng.choice(pool)
    a = rng.choice(pool)
    b = rng.choice(pool)
    return a + b


def surname(rng: random.Random, ethnicity: str = "01") -> str:
    """A surname drawn with realistic frequencies for the ethnicity."""
    if ethnicity == "10":
        return KOREAN_SURNAMES.pick(rng)
    if ethnicity == "11":
        return MANCHU_SURNAMES.pick(rng) if rng.random() < 0.5 else HAN_SURNAMES.pick(rng)
    if ethnicity == "02":
        return MONGOL_SURNAMES.pick(rng) if rng.random() < 0.6 else HAN_SURNAMES.pick(rng)
    if ethnicity == "03":
        return HUI_SURNAMES.pick(rng)
    return HAN_SURNAMES.pick(rng)


ETHNICITY_NAMES = {"01": "汉族", "02": "蒙古族", "03": "回族", "10": "朝鲜族", "11": "满族"}

# Registration-desk confusions: same or similar pinyin, or look-alike characters.
_CONFUSION_GROUPS = (
    "张章 王汪 李理里礼 刘柳留 陈程成 杨阳扬 赵照 黄皇 周舟 吴武伍 徐许 孙荪 朱诸 胡湖 郭国 林琳霖 "
    "高郜 罗骆 郑正 梁良 谢解 宋颂 唐汤 韩寒 冯凤 曹草 彭鹏 董东 于余鱼 魏卫 吕侣 姜江 崔翠 金今 "
    "伟玮炜 丽莉俪 明铭 静婧 敏民 华桦 军君 杰洁 燕艳 娟鹃 芳方 红宏 英瑛 玲琳 霞侠 平萍 "
    "辉晖 峰锋 鹏朋 磊蕾 强墙 涛韬 斌彬 超潮 刚钢 勇永 秀绣 兰岚蓝 凤峰 珍贞 淑舒 萍苹 梅玫 "
    "宇雨语 浩皓昊 轩萱宣 涵寒 欣馨鑫 怡仪宜 晨辰 泽则 博搏 睿瑞锐 子梓紫 佳嘉家 思斯 雪薛 婷庭 "
    "琪琦奇 颖莹盈 慧惠蕙 倩茜 晶京 丹单 建健 国帼 东冬 志智 海涵 春淳 玉钰 桂贵 荣蓉"
)
CONFUSIONS: dict[str, tuple[str, ...]] = {}
for _g in _CONFUSION_GROUPS.split():
    for _c in _g:
        CONFUSIONS[_c] = tuple(x for x in _g if x != _c)

TRADITIONAL = dict(
    zip(
        "陈刘张杨赵黄吴孙马郭罗郑梁谢宋韩冯邓曹萧肖叶苏吕卢沈钟陆贾汤邹龙顾龚万钱严汤乔庞聂丛关伟丽华军红国东兰凤飞鹏涛刚强玲丽艳娟凯龙宝贵发庆云晓书长",
        "陳劉張楊趙黃吳孫馬郭羅鄭梁謝宋韓馮鄧曹蕭蕭葉蘇呂盧沈鍾陸賈湯鄒龍顧龔萬錢嚴湯喬龐聶叢關偉麗華軍紅國東蘭鳳飛鵬濤剛強玲麗艷娟凱龍寶貴發慶雲曉書長",
        strict=True,
    )
)
TRADITIONAL = {k: v for k, v in TRADITIONAL.items() if k != v}


def homophone_variant(rng: random.Random, name: str) -> str | None:
    """Replace one character with a homophone or look-alike; None if no character has a known confusion."""
    idx = [i for i, c in enumerate(name) if c in CONFUSIONS]
    if not idx:
        return None
    i = rng.choice(idx)
    return name[:i] + rng.choice(CONFUSIONS[name[i]]) + name[i + 1 :]


def traditional_variant(name: str) -> str | None:
    """The name in traditional characters where a form differs; None if nothing changes."""
    out = "".join(TRADITIONAL.get(c, c) for c in name)
    return out if out != name else None
