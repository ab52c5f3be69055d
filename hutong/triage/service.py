"""Triage a resident's question: departments (national codes, best first), red flags, intent.

``Triager.answer`` is the whole service; the HTTP route and ``hutong triage ask`` call it. The
department model gives probabilities; rules then apply what the model cannot know reliably:
emergencies first, children to paediatrics (or paediatric surgery) unless the problem clearly
belongs to another specialty, pregnancy to obstetrics. ``narrow_to_offered`` restricts an answer to
the departments nearby institutions actually run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hutong.core.errors import bad_request
from hutong.triage import vocab
from hutong.triage.departments import department, departments, matches
from hutong.triage.intent import classify_intent
from hutong.triage.knowledge import keyword_scores, matched_terms
from hutong.triage.model import TriageModel
from hutong.triage.redflags import find_red_flags
from hutong.triage.text import age_from_text, mentions_child, mentions_pregnancy, normalize

SHIPPED_MODEL = Path(__file__).resolve().parent / "data" / "model.npz"
MAX_TEXT = 2000
#: Problems a child still takes to the specialist (eyes, teeth, skin, mental health, cosmetic,
#: sexually transmitted infections, tuberculosis); surgical problems go to paediatric surgery.
CHILD_KEEPS = ("10", "12", "13", "14", "15", "17", "13.02", "04.07", "05.05")
CHILD_SURGERY = ("04",)
#: In pregnancy these stay with their specialty; everything else is seen by obstetrics first.
PREGNANCY_KEEPS = ("10", "12", "04.03", "15", "14", "04.07")
ADULT_AGE = 14.0


def _in(code: str, group: Iterable[str]) -> bool:
    return any(matches(code, g) for g in group)


@dataclass
class Triager:
    """The triage service around one department model."""

    model: TriageModel

    @classmethod
    def load(cls, path: Path | None = None) -> Triager:
        """The service with the model at ``path`` (default: the shipped model)."""
        return cls(TriageModel.load(path or SHIPPED_MODEL))

    def rank(self, text: str, age: float | None = None, sex: str | None = None) -> dict[str, float]:
        """Department scores after the children, pregnancy and sex rules (not the red flags)."""
        scores = dict(self.model.predict_proba(text))
        blend = float(self.model.meta.get("keyword_blend", 0.0))
        keywords = {c: w for c, w in keyword_scores(text).items() if c != vocab.EMERGENCY}
        if blend and keywords:
            # The knowledge base's own words are strong evidence the model may underweight
            # (measured: +6 points top-1 on the research training split at 0.4).
            total = sum(keywords.values())
            for code in set(scores) | set(keywords):
                scores[code] = (1 - blend) * scores.get(code, 0.0) + blend * keywords.get(code, 0.0) / total
        if sex == "male":
            for code in scores:
                if code.startswith(("05", "06")):
                    scores[code] = 0.0
        child = age < ADULT_AGE if age is not None else mentions_child(text)
        if mentions_pregnancy(text) and (age is None or age >= 12):
            moved = 0.0
            for code, p in scores.items():
                if code != vocab.OBSTETRICS and not _in(code, PREGNANCY_KEEPS):
                    moved += 0.7 * p
                    scores[code] = 0.3 * p
            scores[vocab.OBSTETRICS] = scores.get(vocab.OBSTETRICS, 0.0) + moved
        elif child:
            moved_med = moved_surg = 0.0
            for code, p in scores.items():
                if code in (vocab.PAEDIATRICS, vocab.PAEDIATRIC_SURGERY) or _in(code, CHILD_KEEPS):
                    continue
                if _in(code, CHILD_SURGERY):
                    moved_surg += 0.7 * p
                else:
                    moved_med += 0.7 * p
                scores[code] = 0.3 * p
            scores[vocab.PAEDIATRICS] = scores.get(vocab.PAEDIATRICS, 0.0) + moved_med
            scores[vocab.PAEDIATRIC_SURGERY] = scores.get(vocab.PAEDIATRIC_SURGERY, 0.0) + moved_surg
        total = sum(scores.values()) or 1.0
        return {c: s / total for c, s in scores.items()}

    def answer(self, text: str, age: float | None = None, sex: str | None = None, *, top: int = 5,
               offered: Iterable[str] | None = None) -> dict:
        """The triage answer for one question (the ``POST /api/triage`` contract)."""
        if not isinstance(text, str) or not text.strip():
            raise bad_request("请描述您的症状或问题 / text must not be empty", "text")
        if len(text) > MAX_TEXT:
            raise bad_request(f"问题过长（最多 {MAX_TEXT} 字）/ text is longer than {MAX_TEXT} characters", "text")
        if age is not None and not (0 <= age <= 130):
            raise bad_request("年龄须在 0 到 130 岁之间 / age must be between 0 and 130", "age")
        norm = normalize(text)
        age_used = age if age is not None else age_from_text(norm)
        flags = find_red_flags(norm, age_used)
        terms = matched_terms(norm)
        intent = classify_intent(norm, sum(len(t) for t in terms.values()))
        child = age_used < ADULT_AGE if age_used is not None else mentions_child(norm)
        pregnant = mentions_pregnancy(norm)
        informed = self.model.known_features(norm) > 0 or bool(terms)
        if informed:
            scores = self.rank(norm, age_used, sex)
        else:  # nothing the model knows: a general practice / internal medicine start
            scores = {vocab.GENERAL_PRACTICE: 0.4, "03": 0.35, "04": 0.25}
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        if flags:
            ranked = [(vocab.EMERGENCY, 0.95)] + [(c, s * 0.05) for c, s in ranked if c != vocab.EMERGENCY]
        out = []
        for code, score in ranked[:max(3, top)]:
            reason, reason_en = self._reason(code, terms, flags, child, pregnant, informed)
            out.append({"code": code, "name": department(code).common, "name_en": department(code).en,
                        "score": round(score, 3), "reason": reason, "reason_en": reason_en})
        advice, advice_en = self._advice(out, flags, intent)
        answer = {
            "departments": out,
            "urgent": bool(flags),
            "advice": advice,
            "advice_en": advice_en,
            "intent": intent,
            "red_flags": [{"id": f.id, "label": f.label, "label_en": f.label_en, "evidence": f.evidence} for f in flags],
            "age_used": age_used,
            "model": self.model.meta.get("name", "custom"),
        }
        return narrow_to_offered(answer, offered) if offered is not None else answer

    @staticmethod
    def _reason(code: str, terms: dict[str, list[str]], flags, child: bool, pregnant: bool,
                informed: bool) -> tuple[str, str]:
        """Why this department: (Chinese, English). The resident's own words are quoted as said."""
        dept, dept_en = department(code).common, department(code).en
        if code == vocab.EMERGENCY and flags:
            return ("出现" + "；".join(f.label for f in flags) + "，需要立即急诊处理",
                    "; ".join(f.label_en for f in flags) + ": needs emergency care now")
        said = terms.get(code) or next((t for c, t in terms.items() if matches(c, code) or matches(code, c)), None)
        quoted = "、".join(said[:3]) if said else ""
        if code == vocab.OBSTETRICS and pregnant:
            return ("孕期出现的不适建议先到产科就诊，由产科医生评估后再转相关专科",
                    "Complaints during pregnancy are best seen first in Obstetrics, who refer on if needed")
        if code == vocab.PAEDIATRICS and child:
            return ("患者为儿童，" + (f"描述中提到“{quoted}”，" if said else "") + "儿科（小儿内科）优先接诊",
                    "The patient is a child" + (f" and mentions “{quoted}”" if said else "")
                    + ": Paediatrics sees children first")
        if code == vocab.PAEDIATRIC_SURGERY and child:
            return ("患者为儿童，外科方面的问题由小儿外科诊治",
                    "The patient is a child: surgical problems are treated in Paediatric Surgery")
        if said:
            return (f"描述中提到“{quoted}”，这类问题通常由{dept}诊治",
                    f"You mention “{quoted}”, usually treated in {dept_en}")
        if not informed:
            return ("描述的信息较少，建议先到全科或内科初步评估",
                    "There is little to go on: start with General Practice or Internal Medicine")
        return (f"根据描述的症状综合判断，可能与{dept}相关",
                f"Taken together, the symptoms described may concern {dept_en}")

    @staticmethod
    def _advice(out: list[dict], flags, intent: str) -> tuple[str, str]:
        """What to do next: (Chinese, English)."""
        if flags:
            return vocab.EMERGENCY_ADVICE, vocab.EMERGENCY_ADVICE_EN
        first = out[0]["name"] if out else "全科"
        first_en = out[0]["name_en"] if out else "General Practice"
        if intent == "report":
            return ((f"这是关于检查检验结果的问题：可以在“报告解读”中查看每项指标的含义；结果异常或有不适时，"
                     f"建议带上报告到{first}就诊。"),
                    (f"This is a question about test results: “Report reading” explains each item; if a result is "
                     f"abnormal or you feel unwell, take the report to {first_en}."))
        if intent == "medication":
            return (f"用药问题请咨询开药的医生或药师，不要自行增减或停用药物；需要调整用药时可到{first}就诊。",
                    f"Ask the prescribing doctor or a pharmacist about medicines; do not change or stop them on "
                    f"your own. To adjust them, visit {first_en}.")
        if intent == "cost":
            return ("检查和治疗费用以就诊医院的收费标准为准，医保报销按当地医保政策执行，可咨询医院收费处或拨打医保服务热线12393。",
                    "Charges follow the hospital's price list and reimbursement follows local medical-insurance "
                    "rules: ask the hospital's cashier or call the insurance hotline 12393.")
        return ((f"建议到{first}就诊。如症状突然加重，或出现胸痛、呼吸困难、意识不清、大量出血等情况，"
                 f"请立即拨打120。"),
                (f"Visit {first_en}. If symptoms suddenly worsen, or there is chest pain, difficulty breathing, "
                 f"confusion or heavy bleeding, call 120 now."))


def narrow_to_offered(answer: dict, offered: Iterable[str]) -> dict:
    """The answer restricted to departments that nearby institutions offer (codes of the national
    list, e.g. from the registry's HealthcareService entries).

    A department not offered is replaced by its parent when the parent is offered (呼吸内科 ->
    内科); the emergency department stays whenever the answer is urgent. When nothing offered
    fits, the answer is left whole and says so (``narrowed`` false)."""
    offered_set = {c.strip() for c in offered if c and c.strip()}
    kept: list[dict] = []
    seen: set[str] = set()
    for d in answer["departments"]:
        code = d["code"]
        target = None
        if code in offered_set or (code == vocab.EMERGENCY and answer.get("urgent")):
            target = code
        else:
            parent = department(code).parent
            while parent and target is None:
                if parent in offered_set:
                    target = parent
                parent = department(parent).parent
            if target is None:
                subs = sorted(c for c in offered_set if c.startswith(code + "."))
                target = subs[0] if subs else None
        if target is None or target in seen:
            continue
        seen.add(target)
        entry = dict(d)
        if target != code:
            entry.update(code=target, name=department(target).common, name_en=department(target).en,
                         reason=d["reason"] + f"（附近机构开设{department(target).common}）",
                         reason_en=d.get("reason_en", "") + f" (nearby institutions offer {department(target).en})")
        kept.append(entry)
    out = dict(answer)
    if kept:
        out["departments"] = kept
        out["narrowed"] = True
    else:
        out["narrowed"] = False
    return out


def known_codes() -> set[str]:
    """Every code of the national list (for validating offered codes and training labels)."""
    return set(departments())
