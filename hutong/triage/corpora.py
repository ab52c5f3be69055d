"""The labelled question sets of ``../shared/data`` mapped onto national department codes, with
the fixed held-out split every figure uses. Build and benchmark tools only: the product never
reads these files (they are passed in as a path).

Licences (see each folder's SOURCE.md): ``toyhom_neike_sample`` is MIT and may go into the shipped
model; ``ifly_triage2022`` and ``chip2019_sts`` state no licence and are research-only, used for
evaluation and for the "trained on the research sets" comparison, never shipped.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Source label -> acceptable national codes (the first is the training label). A prediction
#: answers a label when it is one of these or a subdivision of one (``departments.matches``).
IFLY = {
    "内科": ("03",), "心内科": ("03.04",), "消化内科": ("03.02",), "呼吸内科": ("03.01",), "神经内科": ("03.03",),
    "小儿保健": ("07", "09"), "小儿消化疾病": ("07",), "小儿呼吸系统疾病": ("07",), "小儿耳鼻喉": ("07",),
    "直肠肛管疾病": ("04.01",), "运动医学": ("04.03", "22"), "脊柱退行性变": ("04.03",), "乳腺外科": ("04.01",),
    "骨科": ("04.03",), "咽喉疾病": ("11",), "眼科": ("10",), "妇产科": ("05",), "产前检查": ("05.02",),
    "皮肤科": ("13",),
}
#: 甲状腺疾病 is split by disease direction: function disorders to endocrinology; nodules and
#: tumours go to surgery or endocrinology by hospital, so they are left out (as the SOURCE.md says).
IFLY_THYROID = {"桥本甲状腺炎": ("03.07",), "甲减": ("03.07",), "甲状腺功能异常": ("03.07",)}
CHIP = {"diabetes": ("03.07",), "hypertension": ("03.04",), "hepatitis": ("16",), "aids": ("16",),
        "breast_cancer": ("19", "04.01")}
TOYHOM = {"消化科": ("03.02",), "神经科": ("03.03",), "心血管科": ("03.04",), "内分泌科": ("03.07",),
          "呼吸科": ("03.01",), "肾内科": ("03.06",), "血液科": ("03.05",), "风湿免疫科": ("03.08",),
          "普通内科": ("03",), "感染科": ("16",)}
_HEPATITIS = ("乙肝", "丙肝", "肝炎", "大三阳", "小三阳", "hbv", "hbsag", "病毒", "携带", "表面抗原", "e抗原", "核心抗体")

MIT_SOURCES = frozenset({"toyhom_neike_sample"})
RESEARCH_SOURCES = frozenset({"ifly_triage2022", "chip2019_sts"})


@dataclass(frozen=True)
class Question:
    text: str
    codes: tuple[str, ...]
    label: str        # the source's own label, for per-department figures
    source: str
    source_id: str

    @property
    def held_out(self) -> bool:
        return is_held_out(self.source_id)


def is_held_out(source_id: str) -> bool:
    """The fixed split: one question in five (by a hash of its source id) is held out."""
    return int(hashlib.md5(source_id.encode("utf-8")).hexdigest()[:8], 16) % 5 == 0


def _rows(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def _toyhom_codes(label: str, text: str) -> tuple[str, ...] | None:
    if label == "肝病科":
        # 肝病科 questions are hepatitis (传染科) or fatty liver / cirrhosis (消化内科): by the text.
        return ("16",) if any(w in text.lower() for w in _HEPATITIS) else ("03.02",)
    return TOYHOM.get(label)


def load(shared: Path, sources: frozenset[str]) -> list[Question]:
    """Questions of the named sources, mapped to codes (rows without a clear mapping dropped)."""
    folder = Path(shared) / "zh_triage_train"
    out: list[Question] = []
    files = {"ifly_triage2022": "ifly_triage2022.csv", "chip2019_sts": "chip2019_sts.csv",
             "toyhom_neike_sample": "toyhom_neike_sample.csv"}
    for source in sorted(sources):
        for row in _rows(folder / files[source]):
            text, dept = row["question"], row["department"]
            if source == "ifly_triage2022":
                head, _, tail = dept.partition("/")
                codes = IFLY_THYROID.get(tail) if head == "甲状腺疾病" else IFLY.get(head)
                label = head
            elif source == "chip2019_sts":
                codes, label = CHIP.get(dept), dept
            else:
                codes, label = _toyhom_codes(dept, text), dept
            if codes and text.strip():
                out.append(Question(text, codes, label, source, row["source_id"]))
    return out
