"""Red flags: what in a resident's words means call 120 now.

Rules, not the model: they must catch the few emergencies reliably and explain themselves, and
they were written against clinical warning signs, not against any question set (the urgent /
non-urgent set in ``benchmarks/triage/redflag_questions.csv`` was committed before them and is
only used to measure recall and false alarms). A term preceded by a negation (没有胸痛) does not
count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hutong.triage.text import mentions_pregnancy, negated

_FEVER = re.compile(r"发烧|发热|高烧|低烧|烧到|体温.{0,3}3[7-9]|3[89](\.\d)?度|3[89](\.\d)?℃|发烫")


def _any(text: str, pattern: re.Pattern) -> str | None:
    for m in pattern.finditer(text):
        if not negated(text, m.start()):
            return m.group(0)
    return None


@dataclass(frozen=True)
class Rule:
    """One warning sign: ``test(text, age)`` returns the words that triggered it, or None."""

    id: str
    label: str      # shown to the resident (zh-CN)
    label_en: str
    test: Callable[[str, float | None], str | None]


def _pattern(*alternatives: str) -> re.Pattern:
    return re.compile("|".join(alternatives))


def _both(first: re.Pattern, second: re.Pattern):
    def test(text: str, _age):
        a = _any(text, first)
        if a is None:
            return None
        b = _any(text, second)
        return f"{a}…{b}" if b else None
    return test


def _one(pattern: re.Pattern):
    return lambda text, _age: _any(text, pattern)


_CHEST = _pattern(r"(胸|心口|心前区|胸前|胸部)[^，,。；;]{0,8}(痛|疼|压|闷|紧|绞)", r"心绞痛", r"心梗")
_CHEST_WITH = _pattern(
    r"出汗|冷汗|大汗|满头.{0,2}汗|浑身是汗", r"放射|窜|左臂|左胳膊|左手|左肩|肩膀|后背|下巴|牙",
    r"喘不|呼吸困难|上不来气", r"晕|眼前发黑|要倒", r"恶心|想吐|呕吐", r"血压(很|特别)?低|脸色(发)?白|面色苍白",
    r"不缓解|没缓解|还没好|一直不好|持续", r"[二三四五六]十(几)?分钟|十几分钟|半(个多)?小时|一个(多)?小时",
    r"硝酸甘油", r"压榨|撕裂|剧痛|绞痛|濒死|像.{0,4}压着|被.{0,4}压")
_TEARING = _pattern(r"撕裂(样|一样|般)?的?(痛|疼)")
_STROKE = _pattern(
    r"嘴(巴|角)?[^，,。]{0,3}歪", r"口角歪斜|口眼歪斜|面部歪斜", r"说话不清|说不清楚?|口齿不清|说不出话|大舌头|舌头不听使唤",
    r"一侧|半边(身|身体|脸)|半身不遂|偏瘫了|一边(手|腿|身|胳膊)",
    r"(左|右)(边|侧)?(手|胳膊|腿|脚|半身)[^。]{0,8}(没劲|无力|抬不起|不能动|麻木|拿不住|不听使唤)",
    r"听不懂(别人)?(说话)?", r"说话(突然)?(颠三倒四|语无伦次)")
_SUDDEN_VISION = _pattern(r"突然[^，,。]{0,6}(看不见|失明|重影)")
_HEADACHE = _pattern(r"剧烈头痛|头痛欲裂|像要炸开|炸裂(一样|般)?的?(痛|疼)|最痛的一次|从来没(有)?这么痛|喷射(样|状)?呕吐|脖子发硬|颈部僵硬|脖子僵直")
_BREATHING = _pattern(
    r"喘不(上|过|了)(来)?气|上不来气|喘不动|呼吸(特别|非常|很|十分)?困难|呼吸不了|憋得(慌|不行|厉害)|憋醒|憋得发紫",
    r"嘴唇[^，,。]{0,2}(发)?紫|发绀|脸[^，,。]{0,3}紫|说话都说不(完整|出)", r"往里凹|三凹", r"喘得(很|特别|非常)?厉害",
    r"血氧[^，,。]{0,4}([0-8][0-9])(?![0-9])", r"卡住[^，,。]{0,3}喉咙|噎住|卡在喉咙|呛到|气管异物", r"喉咙发紧|喉头水肿",
    r"溺水", r"(风团|疙瘩|荨麻疹|过敏)[^。]{0,10}(晕|喘|喉咙|脸肿|嘴唇肿)", r"嘴唇肿[^。]{0,6}(喘|气)")
_BLEEDING = _pattern(
    r"吐血|呕血|大口[^，,。]{0,2}血", r"咳[^，,。]{0,4}(很多|大量|好多|一口一口)[^，,。]{0,2}血", r"柏油(样)?",
    r"黑(色)?[^，,。]{0,4}大便[^。]{0,10}(晕|站不住)|黑便[^。]{0,10}(晕|站不住)",
    r"血[^，,。]{0,4}(止不住|喷|往外冒|往外涌)|止不住[^，,。]{0,3}血|大量出血|大出血|出血(很多|不止)|(很多|好多)血|流了(很多|好多|一地)血",
    r"湿透", r"鼻血[^。]{0,10}(止不住|一个多小时|几个小时)", r"全是血|便血[^。]{0,6}(晕|很多)", r"咖啡色[^。]{0,6}(吐|呕)|吐[^。]{0,10}咖啡色")
_POISON = _pattern(
    r"喝了农药|农药中毒|百草枯|敌敌畏|老鼠药|误(服|喝|吃|食)", r"吃了[^，,。]{0,6}(一整瓶|一瓶|整瓶|好几片|很多片|好多片|过量)",
    r"过量的?[^，,。]{0,4}药", r"(喝|吃)了[^，,。]{0,4}(洗衣液|消毒液|84|洁厕|汽油|酒精)", r"洗衣液|消毒液",
    r"烧炭|煤气(泄漏|中毒)|一氧化碳", r"(野|毒)蘑菇", r"中毒")
_SUICIDE = _pattern(r"自杀|轻生|不想活|活不下去|想(去)?死|结束(自己|生命)|割腕|跳楼|遗书|活着没(意思|意义)|准备好了绳子|上吊|自残")
_SEIZURE = _pattern(r"抽搐|抽风|惊厥|口吐白沫|眼睛往上翻|翻白眼")
_CONSCIOUS = _pattern(r"昏迷|叫不醒|不省人事|晕倒|昏倒|倒地|意识不清|神志不清|晕过去了|没(有)?反应了|呼吸(很)?弱")
_TRAUMA = _pattern(
    r"车祸|被车撞|被[^，,。]{0,3}撞(了|倒)", r"从[^，,。]{0,4}楼[^，,。]{0,3}(摔|掉|跳|坠)|高处(坠落|摔)|摔下来",
    r"(手指|手|腿|胳膊|骨头)[^，,。]{0,2}断了|骨头露|(腿|胳膊|手)变形", r"烫伤了?(大半|全身|大面积)|大面积(烧|烫)伤|烧伤了?(大半|全身)",
    r"卷进(去)?", r"被[^，,。]{0,2}咬了?(脖子|脸|头)", r"刀(伤|捅)|被捅", r"电击|触电|被电(了|到|击)",
    r"化学品[^，,。]{0,6}(溅|进)|(溅|进)[^，,。]{0,4}眼睛[^。]{0,8}(看不清|疼)")
_PREG_DANGER = _pattern(r"剧痛|大量出血|出血|流血|流了很多水|破水|羊水破|头痛眼花|视物模糊|血压\s*(1[6-9][0-9]|2[0-9][0-9])|胎动(减少|消失|没了)|抽搐")
_ABDOMEN = _pattern(r"(肚子|腹部|腹)[^，,。]{0,3}剧痛|疼得(打滚|直不起腰)|痛得打滚|像刀割|肚皮(硬|板)|板状腹|吐绿水|(阴囊|睾丸)[^，,。]{0,4}(剧痛|突然疼)")
_HEART_RATE = _pattern(r"心跳[^，,。]{0,4}(两百|200|一百八|180|很乱|乱跳)|心跳[^。]{0,6}(眼黑|眼前发黑|晕)")


def _infant_fever(text: str, age: float | None) -> str | None:
    if age is None or age > 0.25:
        return None
    fever = _any(text, _FEVER)
    return f"{round(age * 12, 1)}个月婴儿…{fever}" if fever else None


def _pregnancy(text: str, _age) -> str | None:
    if not mentions_pregnancy(text):
        return None
    return _any(text, _PREG_DANGER)


def _chest(text: str, age) -> str | None:
    return _both(_CHEST, _CHEST_WITH)(text, age) or _any(text, _TEARING)


RULES: tuple[Rule, ...] = (
    Rule("chest-pain", "胸痛伴出汗、放射痛或持续不缓解（警惕急性心肌梗死、主动脉夹层）",
         "chest pain with sweating, radiation or lasting (possible heart attack or aortic dissection)", _chest),
    Rule("stroke", "口角歪斜、一侧肢体无力或言语不清（警惕脑卒中）",
         "drooping mouth, one-sided weakness or slurred speech (possible stroke)", _one(_STROKE)),
    Rule("sudden-vision", "突然视物不见或重影", "sudden loss of vision or double vision", _one(_SUDDEN_VISION)),
    Rule("thunderclap-headache", "剧烈头痛、喷射样呕吐或颈项强直", "worst-ever headache, projectile vomiting or stiff neck",
         _one(_HEADACHE)),
    Rule("breathing", "呼吸困难、窒息或严重过敏", "difficulty breathing, choking or severe allergic reaction", _one(_BREATHING)),
    Rule("bleeding", "大量出血或呕血、黑便", "heavy bleeding, vomiting blood or black stools", _one(_BLEEDING)),
    Rule("poisoning", "中毒或误服药物、农药", "poisoning or swallowed medicines or chemicals", _one(_POISON)),
    Rule("suicide", "有自杀或自伤的想法", "thoughts of suicide or self-harm", _one(_SUICIDE)),
    Rule("infant-fever", "3个月以内婴儿发热", "fever in an infant under three months", _infant_fever),
    Rule("seizure", "抽搐", "seizure", _one(_SEIZURE)),
    Rule("consciousness", "意识丧失或昏迷", "loss of consciousness", _one(_CONSCIOUS)),
    Rule("trauma", "严重外伤、烧烫伤或触电", "major injury, burn or electric shock", _one(_TRAUMA)),
    Rule("pregnancy-danger", "孕期腹痛、出血、破水或血压很高", "pain, bleeding, waters breaking or very high blood pressure in pregnancy",
         _pregnancy),
    Rule("acute-abdomen", "剧烈腹痛（警惕急腹症）", "severe abdominal pain (possible surgical emergency)", _one(_ABDOMEN)),
    Rule("arrhythmia", "心跳极快或紊乱伴头晕", "very fast or irregular heartbeat with dizziness", _one(_HEART_RATE)),
)


@dataclass(frozen=True)
class RedFlag:
    """A warning sign found in one question."""

    id: str
    label: str
    label_en: str
    evidence: str


def find_red_flags(text: str, age: float | None = None) -> list[RedFlag]:
    """Every warning sign in ``text`` (normalised) for a person of ``age`` years (None: unknown)."""
    found = []
    for rule in RULES:
        evidence = rule.test(text, age)
        if evidence:
            found.append(RedFlag(rule.id, rule.label, rule.label_en, evidence))
    return found
