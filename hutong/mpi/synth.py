"""Synthetic Chinese registration records with realistic desk errors, with the truth (for tests, benchmarks and
the default model). Not real people: names are drawn from common characters, IDs are made with valid check digits.

Errors injected into duplicates (each with its own probability, scaled by ``error_rate``): homophone
characters, traditional forms, look-alike characters, dropped or swapped given-name characters, compound
surnames written with one character, 15-digit IDs, one-digit ID typos, missing IDs, day/month transposed or
one-digit birth dates, year-only birth dates, changed or mistyped phones, shortened addresses. Twins (same
family, birth date, address and phone, consecutive IDs) are added as hard non-matches.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from hutong.china import ids
from hutong.mpi import names

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
            "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
            "单解仇查朴")
COMPOUND = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "令狐")
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国玉梅文红云辉鹏飞斌宇浩凯佳欣怡涵梓轩雨泽诺思彤豪"
         "晨阳博睿嘉琪萱妍瑶淑琳婷颖雪慧莉倩蕾晶燕萍丹宁波峰亮健俊杰志海林松柏琦璐昊天翔瀚铭鑫磊涛新春德福寿永"
         "庆长荣贵祥利清正光明金银宝珠凤莲菊芬兴旺立成才坤乾振东南西北山川河湖江海岩石玲龄伶铃翠翼毅艺意义仪怡")
DIVISIONS = ("220102", "220103", "220104", "220105", "220106", "220112", "220113", "220122", "220202", "220203",
             "220204", "220211", "220302", "220303", "220402", "220403", "220502", "220602", "220702", "220802")
STREETS = ("人民大街", "红旗街", "建设街", "解放大路", "自由大路", "长江路", "黄河路", "重庆路", "同志街", "西安大路",
           "延安大街", "卫星路", "亚泰大街", "普阳街", "南湖大路", "吉林大路", "东盛大街", "临河街", "丙十八道街", "安达街")
CITY_OF = {"2201": ("吉林省", "长春市"), "2202": ("吉林省", "吉林市"), "2203": ("吉林省", "四平市"),
           "2204": ("吉林省", "辽源市"), "2205": ("吉林省", "通化市"), "2206": ("吉林省", "白山市"),
           "2207": ("吉林省", "松原市"), "2208": ("吉林省", "白城市")}

_S2T: dict[str, str] = {}
for _t, _s in names.T2S.items():
    _S2T.setdefault(_s, _t)
_LOOK: dict[str, list[str]] = {}
for _c, _h in names.LOOKALIKE.items():
    _LOOK.setdefault(_h, []).append(_c)
_HOMO: dict[str, list[str]] = {}
for _c in dict.fromkeys(GIVEN + "".join(SURNAMES)):  # ordered: a set would depend on PYTHONHASHSEED
    _HOMO.setdefault(names.given_pinyin(_c), []).append(_c)
_EXTRA_HOMO = "维玮薇巍卫为炜纬蔚娅雅亚霞夏侠佳家嘉加珈静靖晶菁京敬婧景丽莉立力俐利黎励艳燕雁彦岩妍研颜言" \
              "芳方芬纷华桦骅化花明铭鸣名茗敏闵珉民婷亭庭廷停霆"
for _c in _EXTRA_HOMO:
    _HOMO.setdefault(names.given_pinyin(_c), []).append(_c)


def _person(rng: random.Random, k: int) -> dict:
    if rng.random() < 0.03:
        family = rng.choice(COMPOUND)
    else:
        family = rng.choice(SURNAMES)
    given = "".join(rng.choice(GIVEN) for _ in range(1 if rng.random() < 0.3 else 2))
    sex = rng.choice(("male", "female"))
    born = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 88))
    div = rng.choice(DIVISIONS)
    rid = ids.make_resident_id(div, born, rng.randrange(0, 999), sex)
    phone = "1" + rng.choice("3578") + "".join(rng.choice("0123456789") for _ in range(9))
    prov, city = CITY_OF.get(div[:4], ("吉林省", "长春市"))
    addr = f"{prov}{city}{rng.choice(STREETS)}{rng.randrange(1, 3000)}号{rng.randrange(1, 30)}栋{rng.randrange(1, 8)}单元"
    return {"entity": f"p{k}", "family": family, "given": given, "sex": sex, "born": born, "id": rid,
            "phone": phone, "address": addr, "address_code": div}


def _swap_char(rng: random.Random, text: str, table: dict[str, list[str]] | None, key=lambda c: c) -> str:
    spots = [i for i, c in enumerate(text) if table is None or len(table.get(key(c), [])) > 1]
    if not spots:
        return text
    i = rng.choice(spots)
    if table is None:
        return text
    options = [c for c in table[key(text[i])] if c != text[i]]
    return text[:i] + rng.choice(options) + text[i + 1:] if options else text


def _trad(text: str) -> str:
    return "".join(_S2T.get(c, c) for c in text)


def _variant(rng: random.Random, p: dict, e: float) -> dict:
    """A registration of person ``p`` at another desk, with errors at rate ``e``."""
    family, given = p["family"], p["given"]
    r = rng.random
    if r() < 0.25 * e:
        given = _swap_char(rng, given, _HOMO, names.given_pinyin)
    if r() < 0.08 * e:
        family = _swap_char(rng, family, _HOMO, names.given_pinyin)
    if r() < 0.10 * e:
        given = _swap_char(rng, given, _LOOK, lambda c: names.LOOKALIKE.get(c, c))
    if r() < 0.05 * e and len(given) == 2:
        given = given[0]  # second character dropped
    name = family + given
    if r() < 0.10 * e:
        name = _trad(name)
    if len(family) == 2 and r() < 0.3 * e:
        name = family[0] + given if r() < 0.5 else family + " " + given
    if r() < 0.05 * e:
        name = name[0] + " " + name[1:]
    rid = p["id"]
    x = r()
    if x < 0.15 * e:
        rid = ""
    elif x < 0.22 * e and p["born"].year < 1985:
        rid = rid[:6] + rid[8:17]  # old 15-digit card
    elif x < 0.32 * e:
        k = rng.randrange(0, 17)
        rid = rid[:k] + str((int(rid[k]) + rng.randrange(1, 10)) % 10) + rid[k + 1:]
    elif x < 0.36 * e:
        rid = rid.lower()
    born = p["born"]
    bd = born.isoformat()
    y = r()
    if y < 0.06 * e and born.day <= 12 and born.day != born.month:
        bd = f"{born.year}-{born.day:02d}-{born.month:02d}"
    elif y < 0.12 * e:
        s = born.strftime("%Y%m%d")
        k = rng.choice((2, 3, 5, 7))
        s = s[:k] + str((int(s[k]) + 1) % 10) + s[k + 1:]
        bd = f"{s[:4]}-{s[4:6]}-{s[6:]}"
    elif y < 0.15 * e:
        bd = str(born.year)
    elif y < 0.25 * e:
        bd = f"{born.year}年{born.month}月{born.day}日"
    phone = p["phone"]
    z = r()
    if z < 0.2 * e:
        phone = ""
    elif z < 0.3 * e:
        phone = "1" + rng.choice("3578") + "".join(rng.choice("0123456789") for _ in range(9))
    elif z < 0.36 * e:
        k = rng.randrange(3, 11)
        phone = phone[:k] + str((int(phone[k]) + 1) % 10) + phone[k + 1:]
    elif z < 0.42 * e:
        phone = "+86 " + phone
    addr = p["address"]
    a = r()
    if a < 0.3 * e:
        addr = addr.replace("吉林省", "")
    elif a < 0.45 * e:
        addr = addr.split("号")[0] + "号"
    elif a < 0.55 * e:
        addr = ""
    elif a < 0.6 * e:
        addr = _trad(addr)
    sex = p["sex"]
    if r() < 0.02 * e:
        sex = "female" if sex == "male" else "male"
    return {"name": name, "gender": sex, "birth_date": bd, "id_number": rid, "phone": phone,
            "address": addr, "address_code": p["address_code"] if r() > 0.3 * e else ""}


def generate(n_people: int, *, dup_rate: float = 0.5, max_dups: int = 3, error_rate: float = 1.0,
             twins: float = 0.02, seed: int = 7) -> tuple[list[dict], dict[str, str]]:
    """``(records, truth)``: raw records (with ``record_id``) and record_id → entity id."""
    rng = random.Random(seed)
    people = [_person(rng, k) for k in range(n_people)]
    for k in range(int(n_people * twins)):
        p = dict(people[rng.randrange(n_people)])
        p["entity"] = f"t{k}"
        p["given"] = "".join(rng.choice(GIVEN) for _ in range(len(p["given"]) or 1))
        seq = int(p["id"][14:17])
        p["id"] = ids.make_resident_id(p["id"][:6], p["born"], (seq + 2) % 1000, p["sex"])
        people.append(p)
    records: list[dict] = []
    truth: dict[str, str] = {}
    for p in people:
        copies = 1 + (rng.randint(1, max_dups) if rng.random() < dup_rate else 0)
        for c in range(copies):
            rec = _variant(rng, p, error_rate if c else error_rate * 0.3)
            rec["record_id"] = f"r{len(records)}"
            truth[rec["record_id"]] = p["entity"]
            records.append(rec)
    rng.shuffle(records)
    return records, truth
