"""HL7 v2 ORU^R01 / OUL^R22 in: over HTTP and MLLP, ACK/NAK in the message's version, all or nothing
(both backends)."""

from __future__ import annotations

import socket
import uuid

import hl7
import httpx
from sqlalchemy import func, select

from hutong.recognition import hl7v2
from hutong.recognition.mllp import END, START, MllpListener, frame
from hutong.recognition.tables import recognition_hl7_rejected
from hutong.store.schema import resource
from tests.recognition.helpers import RESIDENT_ID, order, seed, when

CT = {"content-type": "x-application/hl7-v2+er7"}


def oru(control: str = "MSG0001", *, facility: str = "hosp-a", charset: str = "UNICODE UTF-8", version: str = "2.5",
        pid3: str = f"{RESIDENT_ID}^^^^NNCHN~A0001^^^hosp-a^MR", name: str = "王^小明", obr7: str | None = None,
        obx: list[str] | None = None, report: str = "L20261201001", kind: str = "ORU^R01^ORU_R01", sep: str = "\r") -> str:
    obr7 = obr7 or when(1).replace("-", "").replace("T", "").replace(":", "")[:14]  # a day ago, UTC digits
    obx = obx if obx is not None else [
        "OBX|1|NM|6690-2^白细胞计数^LN||6.52|10*9/L^^UCUM|3.5-9.5|N|||F",
        "OBX|2|NM|718-7^血红蛋白^LN||112|g/L^^UCUM|130-175|L|||F",
        "OBX|3|SN|777-3^血小板计数^LN||>^400|10*9/L^^UCUM|125-350|H|||F",
        "OBX|4|ST|X-NOTE^备注^L||标本轻度溶血\\T\\已复查||||||F",
        "OBX|5|CWE|5804-0^尿蛋白^LN||260385009^阴性^SCT||||||F",
    ]
    segs = [f"MSH|^~\\&|LIS|{facility}|HUTONG|JL|20261201083000+0800||{kind}|{control}|P|{version}|||||CHN|{charset}",
            f"PID|1||{pid3}||{name}||19900307|M",
            f"OBR|1|O-1|{report}|58410-2^血常规^LN~XCG^血常规^L|||{obr7}|||||||||||||||20261201090000||HM|F",
            "SPM|1|||BLD^Whole blood^HL70487"] + obx
    return sep.join(segs) + sep


def count(store, kind: str) -> int:
    with store.read() as tx:
        return tx.conn.execute(select(func.count()).select_from(resource)
                               .where(resource.c.res_type == kind, resource.c.deleted.is_(False))).scalar()


def test_oru_over_http_is_stored_and_acknowledged(server, server_store):
    seed(server_store)
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.post("/api/hl7v2", content=oru().encode(), headers=CT)
        assert r.status_code == 200, r.text
        ack = hl7.parse(r.content.decode())
        assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "MSG0001"
        assert str(ack.segment("MSH")[12]) == "2.5" and str(ack.segment("MSH")[9]).startswith("ACK^R01")
        reports = c.get("/fhir/DiagnosticReport", params={"identifier": "urn:hutong:report:hosp-a|L20261201001"}).json()
        assert reports["total"] == 1
        rep = reports["entry"][0]["resource"]
        assert rep["subject"] == {"reference": "Patient/pa"} and rep["status"] == "final"
        assert rep["performer"] == [{"reference": "Organization/hosp-a"}] and len(rep["result"]) == 5
        assert rep["issued"] == "2026-12-01T09:00:00+08:00" and rep["specimen"]
        obs = [c.get(f"/fhir/{x['reference']}").json() for x in rep["result"]]
        wbc, hgb, plt, note, pro = obs
        assert wbc["valueQuantity"] == {"value": 6.52, "unit": "10*9/L", "system": "http://unitsofmeasure.org", "code": "10*9/L"}
        assert wbc["referenceRange"][0]["low"]["value"] == 3.5 and wbc["referenceRange"][0]["high"]["value"] == 9.5
        assert hgb["interpretation"][0]["coding"][0]["code"] == "L"
        assert plt["valueQuantity"]["comparator"] == ">" and plt["valueQuantity"]["value"] == 400
        assert note["valueString"] == "标本轻度溶血&已复查"
        assert pro["valueCodeableConcept"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "260385009",
                                                            "display": "阴性"}
        spec = c.get(f"/fhir/{rep['specimen'][0]['reference']}").json()
        assert spec["type"]["coding"][0]["code"] == "BLD"

        # sent again (a resend, or corrected results): the same report, not a second one
        again = oru(obx=["OBX|1|NM|6690-2^白细胞计数^LN||7.1|10*9/L^^UCUM|3.5-9.5|N|||C"])
        assert c.post("/api/hl7v2", content=again.encode(), headers=CT).status_code == 200
        reports = c.get("/fhir/DiagnosticReport", params={"identifier": "urn:hutong:report:hosp-a|L20261201001"}).json()
        assert reports["total"] == 1
        first = c.get(f"/fhir/{reports['entry'][0]['resource']['result'][0]['reference']}").json()
        assert first["id"] == wbc["id"] and first["valueQuantity"]["value"] == 7.1 and first["status"] == "corrected"

        # the stored result is recognised when hospital B orders a CBC
        server_store.run_consumers()
        hook = {"hook": "order-sign", "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/doc-b", "patientId": "B0042",
                            "draftOrders": {"resourceType": "Bundle", "entry": [
                                {"resource": order("sr1", "B0042", [{"system": "http://loinc.org", "code": "58410-2"}])}]}}}
        cards = c.post("/cds-services/recognition-order-sign", json=hook,
                       headers={"X-Hutong-Institution": "hosp-b"}).json()["cards"]
        assert len(cards) == 1 and cards[0]["extension"]["hutong-recognition"]["result"] == f"DiagnosticReport/{rep['id']}"


def test_gb18030_lf_endings_new_patient_and_local_time(store):
    seed(store)
    other_id = "22010219850101002X"
    text = oru("MSG-GB", facility="hosp-c", charset="GB 18030-2000", pid3=f"{other_id}^^^^NNCHN~C77^^^hosp-c^MR",
               name="李^秀英", obr7="202612010800", report="C-1", sep="\n")
    out = hl7v2.receive(store, text.encode("gb18030"))
    assert out.code == "AA", out.ack
    assert out.encoding == "gb18030"
    with store.read() as tx:
        rep = tx.read("DiagnosticReport", out.reports[0]).resource
        pat = tx.read("Patient", out.patient).resource
    assert rep["effectiveDateTime"] == "2026-12-01T08:00:00+08:00"  # no offset: Asia/Shanghai
    assert pat["name"][0]["text"] == "李秀英" and pat["gender"] == "male" and pat["birthDate"] == "1990-03-07"
    assert {"system": "urn:hutong:mrn:hosp-c", "value": "C77"} in pat["identifier"]
    assert out.patient not in ("pa", "pb")
    # the same bytes announced as UTF-8 are refused, not stored as mojibake
    bad = hl7v2.receive(store, oru("MSG-GB2", charset="UNICODE UTF-8", name="李^秀英").encode("gb18030"))
    assert bad.code == "AR" and "ERR|" in bad.ack


def test_malformed_messages_get_a_nak_and_change_nothing(store):
    seed(store)
    before = {k: count(store, k) for k in ("DiagnosticReport", "Observation", "Patient", "Specimen")}
    cases = {
        "bad number": (oru("M1", obx=["OBX|1|NM|6690-2^WBC^LN||abc|10*9/L|||||F"],
                           pid3=f"{'11010519491231002X'}^^^^NNCHN"), "AE", "not a number"),
        "unknown facility": (oru("M2", facility="nowhere"), "AE", "not a registered institution"),
        "bad time": (oru("M3", obr7="2026130108"), "AE", "date/time"),
        "no PID-3": (oru("M4", pid3=""), "AE", "PID-3"),
        "unsupported type": (oru("M5", kind="ADT^A01"), "AR", "is not accepted here"),
        "bad version": (oru("M6", version="3.0"), "AR", "version"),
        "bad value type": (oru("M7", obx=["OBX|1|ED|X^Y^L||abc||||||F"]), "AE", "value type"),
        "unknown status": (oru("M8", obx=["OBX|1|NM|X^Y^L||1||||||Q"]), "AE", "status"),
        "unknown charset": (oru("M9", charset="KOI8-R"), "AR", "character set"),
    }
    for name, (text, code, why) in cases.items():
        out = hl7v2.receive(store, text.encode())
        assert out.code == code, (name, out.ack)
        ack = hl7.parse(out.ack)
        assert str(ack.segment("MSA")[1]) == code and str(ack.segment("MSH")[12]) in ("2.5", "3.0")
        assert why in str(ack.segment("ERR")), (name, out.ack)
    for garbage in (b"", b"hello", b"\xff\xfe\x00", b"MSH|"):
        out = hl7v2.receive(store, garbage)
        assert out.code == "AR" and out.ack.startswith("MSH|") and "ERR|" in out.ack
    # an older version gets the older ERR layout, in its own version
    out = hl7v2.receive(store, oru("OLD", version="2.3", facility="nowhere").encode())
    assert out.code == "AE" and "|2.3" in out.ack.split("\r")[0] and "ERR|MSH^1^4^204&" in out.ack
    assert {k: count(store, k) for k in before} == before
    with store.read() as tx:
        kept = tx.conn.execute(select(recognition_hl7_rejected.c.control_id, recognition_hl7_rejected.c.code)).all()
    assert {"M1", "M2", "M5", "OLD"} <= {k[0] for k in kept} and len(kept) == len(cases) + 5


def _mllp_send(port: int, payloads: list[bytes]) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        out = []
        for p in payloads:
            s.sendall(frame(p))
            buf = b""
            while not buf.endswith(END):
                chunk = s.recv(65536)
                assert chunk, "connection closed before the ACK"
                buf += chunk
            assert buf.startswith(START)
            out.append(buf[1:-2])
        return out


def test_mllp_listener_acks_each_message_in_order(store):
    seed(store)
    listener = MllpListener(store, "127.0.0.1", 0)
    assert listener.start()
    try:
        acks = _mllp_send(listener.port, [oru("ML1", report="R-ML1").encode(), b"MSH|garbage",
                                          oru("ML2", report="R-ML2", obx=["OBX|1|NM|X^Y^L||oops||||||F"]).encode(),
                                          oru("ML3", report="R-ML3").encode()])
    finally:
        listener.stop()
    codes = [str(hl7.parse(a.decode()).segment("MSA")[1]) for a in acks]
    assert codes == ["AA", "AR", "AE", "AA"]
    assert [str(hl7.parse(a.decode()).segment("MSA")[2]) for a in (acks[0], acks[3])] == ["ML1", "ML3"]
    with store.read() as tx:
        found = {n: tx.search_ids("DiagnosticReport", [("identifier", f"urn:hutong:report:hosp-a|{n}")])
                 for n in ("R-ML1", "R-ML2", "R-ML3")}
        linked = tx.read("DiagnosticReport", found["R-ML1"][0]).resource["subject"]
    assert [len(v) for v in found.values()] == [1, 0, 1]
    assert linked == {"reference": "Patient/pa"}


def test_field_reads_the_parse_tree_as_the_library_does():
    """``field`` reads python-hl7's tree directly; it answers what ``extract_field`` answers for every
    field, repetition, component and subcomponent of real-looking messages (escapes included)."""
    texts = [oru(), oru(pid3="A0001^^^hosp-a^MR", obx=["OBX|1|ST|N^注^L||a\\F\\b\\S\\c~第二行||||||F",
                                                         "OBX|2|CWE|1^x&y&z^L^2^w^LN||A^B~C^D||||||F", "OBX|3|NM|"])]
    checked = 0
    for text in texts:
        for seg in hl7v2.parse(text.replace("\r", "\r")):
            for f in range(1, len(seg) + 1):
                for rep in (1, 2, 3):
                    for comp in (1, 2, 3, 4, 5, 6):
                        for sub in (1, 2, 3):
                            assert hl7v2.field(seg, f, rep, comp, sub) == hl7v2.library_field(seg, f, rep, comp, sub), \
                                (str(seg[0]), f, rep, comp, sub)
                            checked += 1
    assert checked > 5000


def test_oul_r22_groups_results_by_specimen(store):
    """OUL^R22 is specimen first: SPM, the specimen's own OBX, then the orders on it. Each OBR is a
    report on its specimen; two orders on one specimen share one Specimen; a specimen with results
    but no order is refused and nothing is stored."""
    seed(store)
    head = ["MSH|^~\\&|LIS|hosp-a|HUTONG|JL|20261201083000+0800||OUL^R22^OUL_R22|OUL-1|P|2.5.1|||||CHN|UNICODE UTF-8",
            f"PID|1||{RESIDENT_ID}^^^^NNCHN~A0001^^^hosp-a^MR||王^小明||19900307|M"]
    serum = ["SPM|1|S-1||SER^Serum^HL70487|||||||||||||20261201070000",
             "OBX|1|ST|HEMOLYSIS^溶血指数^L||无溶血||||||F",
             "OBR|1||R22-CHEM|24325-3^肝功能^LN|||20261201080000",
             "OBX|1|NM|1742-6^谷丙转氨酶^LN||88|U/L^^UCUM|9-50|H|||F",
             "OBR|2||R22-LIPID|57698-3^血脂^LN|||20261201080000",
             "OBX|1|NM|2093-3^总胆固醇^LN||4.2|mmol/L^^UCUM|<5.2|N|||F"]
    blood = ["SPM|2|B-1||BLD^Whole blood^HL70487",
             "OBR|3||R22-CBC|58410-2^血常规^LN|||20261201080000",
             "OBX|1|NM|6690-2^白细胞计数^LN||6.5|10*9/L^^UCUM|3.5-9.5|N|||F"]
    out = hl7v2.receive(store, "\r".join(head + serum + blood).encode())
    assert out.code == "AA", out.ack
    with store.read() as tx:
        reps = {tx.read("DiagnosticReport", r).resource["identifier"][0]["value"]: tx.read("DiagnosticReport", r).resource
                for r in out.reports}
        assert set(reps) == {"R22-CHEM", "R22-LIPID", "R22-CBC"}
        chem, lipid, cbc = reps["R22-CHEM"], reps["R22-LIPID"], reps["R22-CBC"]
        assert chem["specimen"] == lipid["specimen"] != cbc["specimen"]  # one serum tube, one blood tube
        serum_spec = tx.read("Specimen", chem["specimen"][0]["reference"].split("/")[1]).resource
        assert serum_spec["type"]["coding"][0]["code"] == "SER"
        assert serum_spec["collection"]["collectedDateTime"] == "2026-12-01T07:00:00+08:00"
        assert tx.read("Specimen", cbc["specimen"][0]["reference"].split("/")[1]).resource["type"]["coding"][0]["code"] == "BLD"
        # the specimen's own observation is a result of its first report
        chem_obs = [tx.read("Observation", x["reference"].split("/")[1]).resource for x in chem["result"]]
        assert [o["code"]["coding"][0]["code"] for o in chem_obs] == ["HEMOLYSIS", "1742-6"]
        assert all(o["specimen"] == chem["specimen"][0] for o in chem_obs)
        assert len(lipid["result"]) == 1 and len(cbc["result"]) == 1
    assert count(store, "Specimen") == 2

    before = {k: count(store, k) for k in ("DiagnosticReport", "Observation", "Specimen")}
    orphan = head + ["SPM|1|S-9||SER^Serum^HL70487", "OBX|1|NM|1742-6^谷丙转氨酶^LN||50|U/L^^UCUM||N|||F"]
    bad = hl7v2.receive(store, "\r".join(orphan).encode().replace(b"OUL-1", b"OUL-2"))
    assert bad.code == "AE" and "without an order" in bad.error
    assert {k: count(store, k) for k in before} == before
