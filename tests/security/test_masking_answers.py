"""mask_answer: capability API answers masked by role (plain functions, no storage)."""

from hutong.core.caller import Caller
from hutong.security.masking import mask_answer

OPERATOR = Caller(client_id="op", roles=frozenset({"operator"}), auth="session")
DOCTOR = Caller(client_id="dr", roles=frozenset({"clinician"}), auth="session")


def test_operator_sees_masked_doctor_clear():
    answer = {"items": [{"name": "王小芳", "id_number": "220112199001013126", "phone": "13812345678", "score": 0.9,
                         "record": {"resourceType": "Patient", "name": [{"text": "王小芳"}]}}]}
    masked = mask_answer(OPERATOR, answer)
    item = masked["items"][0]
    assert item["name"] != "王小芳" and item["name"].startswith("王")
    assert item["id_number"].startswith("220112") and item["id_number"].endswith("3126") and "*" in item["id_number"]
    assert "*" in item["phone"] and item["score"] == 0.9
    assert item["record"]["name"][0]["text"] != "王小芳"
    assert answer["items"][0]["name"] == "王小芳"  # not modified in place
    assert mask_answer(DOCTOR, answer) is answer
