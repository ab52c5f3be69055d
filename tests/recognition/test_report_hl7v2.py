"""Report interpretation of a lab's HL7 v2 ORU (issue 16): ``POST /api/report/interpret`` with the
message as the body reads it through recognition's ORU mapper and answers exactly as for the same
results sent as a FHIR Bundle; a malformed message is a 400 OperationOutcome (both backends)."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from hutong.reportread.interpret import LAB_SOURCE
from hutong.store.schema import resource

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
#: A liver panel, a haemoglobin with the lab's own range, and a critical potassium, for a man born 1990.
OBX = [("1742-6", "谷丙转氨酶", 88, "U/L", ""), ("1920-8", "谷草转氨酶", 30, "U/L", ""),
       ("718-7", "血红蛋白", 120, "g/L", "115-150"), ("2823-3", "钾", 7.2, "mmol/L", ""),
       ("2345-7", "葡萄糖", 5.1, "mmol/L", "")]


def oru(sep: str = "\r", charset: str = "UNICODE UTF-8", name: str = "王^小明") -> str:
    segs = [f"MSH|^~\\&|LIS|hosp-a|HUTONG|JL|20261201083000+0800||ORU^R01^ORU_R01|RR1|P|2.5|||||CHN|{charset}",
            f"PID|1||A0001^^^hosp-a^MR||{name}||19900307|M",
            "OBR|1||L77|24325-3^肝功能及电解质^LN|||20261201080000"]
    segs += [f"OBX|{i + 1}|NM|{code}^{text}^LN||{value}|{unit}^^UCUM|{rng}||||F"
             for i, (code, text, value, unit, rng) in enumerate(OBX)]
    return sep.join(segs) + sep


def same_as_fhir() -> dict:
    """The same results as a FHIR Bundle, as a hospital would send them."""
    patient = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1990-03-07"}
    obs = []
    for i, (code, text, value, unit, rng) in enumerate(OBX):
        o = {"resourceType": "Observation", "id": f"o{i}", "status": "final",
             "code": {"coding": [{"system": LOINC, "code": code, "display": text}], "text": text},
             "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-12-01T08:00:00+08:00",
             "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}
        if rng:
            lo, hi = (float(x) for x in rng.split("-"))
            o["referenceRange"] = [{"low": {"value": lo, "unit": unit, "system": UCUM, "code": unit},
                                    "high": {"value": hi, "unit": unit, "system": UCUM, "code": unit}}]
        obs.append(o)
    rep = {"resourceType": "DiagnosticReport", "id": "r1", "status": "final", "code": {"text": "肝功能及电解质"},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-12-01T08:00:00+08:00",
           "result": [{"reference": f"Observation/{o['id']}"} for o in obs]}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": "Patient/p1", "resource": patient}, {"resource": rep}] + [{"resource": o} for o in obs]}


def essentials(answer: dict) -> list[tuple]:
    return [(i["code"], i["value"], i["unit"], i["flag"], (i.get("interval") or {}).get("low"),
             (i.get("interval") or {}).get("high"), (i.get("interval") or {}).get("source"), i.get("explanation"))
            for i in answer["items"]]


def test_an_oru_is_interpreted_like_the_same_fhir_report(server, server_store):
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.post("/api/report/interpret", content=oru().encode(), headers={"content-type": "x-application/hl7-v2+er7"})
        assert r.status_code == 200, r.text
        answer = r.json()
        fhir = c.post("/api/report/interpret", json=same_as_fhir())
        assert fhir.status_code == 200, fhir.text
        assert essentials(answer) == essentials(fhir.json())
        items = {i["code"]: i for i in answer["items"]}
        assert len(items) == len(OBX) and answer["summary"]
        # a man of 36: ALT against the national adult male interval (WS/T 404), high
        assert items["1742-6"]["flag"] == "high" and items["1742-6"]["interval"]["high"] == 50
        assert "WS/T 404" in items["1742-6"]["interval"]["source"]
        # the lab's own OBX-7 range wins over the national interval, and says so
        hb = items["718-7"]
        assert hb["interval"]["low"] == 115 and hb["interval"]["high"] == 150 and hb["interval"]["source"] == LAB_SOURCE
        assert hb["flag"] == "normal"
        assert items["2823-3"]["flag"] == "critical-high"
        # a GB18030 message with LF endings, sent as application/hl7-v2: the same answer
        gb = oru(sep="\n", charset="GB18030").encode("gb18030")
        r = c.post("/api/report/interpret", content=gb, headers={"content-type": "application/hl7-v2"})
        assert r.status_code == 200, r.text
        assert essentials(r.json()) == essentials(answer)
    with server_store.read() as tx:  # interpretation stores nothing
        assert tx.conn.execute(select(func.count()).select_from(resource)
                               .where(resource.c.res_type.in_(("DiagnosticReport", "Observation")))).scalar() == 0


def test_a_malformed_oru_is_a_400_operation_outcome(server):
    good = oru()
    bad = {
        "no PID": good.replace("PID|1||A0001^^^hosp-a^MR||王^小明||19900307|M\r", ""),
        "no OBR": "\r".join(s for s in good.split("\r") if not s.startswith(("OBR", "OBX"))),
        "not a number": good.replace("||88|", "||八十八|"),
        "bad time": good.replace("20261201080000", "20261341080000"),
        "an ADT": good.replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"),
        "no control id": good.replace("|RR1|", "||"),
        "unknown charset": good.replace("UNICODE UTF-8", "KLINGON"),
        "garbage after the MSH": "MSH|" + "\x00" * 5,
    }
    with httpx.Client(base_url=server, timeout=60) as c:
        for why, text in bad.items():
            r = c.post("/api/report/interpret", content=text.encode(), headers={"content-type": "x-application/hl7-v2+er7"})
            assert r.status_code == 400, (why, r.status_code, r.text)
            body = r.json()
            assert body["resourceType"] == "OperationOutcome" and "HL7 v2" in body["issue"][0]["diagnostics"], why
        # GB18030 bytes under a UTF-8 MSH-18
        r = c.post("/api/report/interpret", content=good.encode("gb18030"), headers={"content-type": "application/hl7-v2"})
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
