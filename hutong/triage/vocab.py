"""The triage vocabularies, defined once and used by the models, the service and the routes."""

from __future__ import annotations

from typing import Literal, get_args

#: The kind of question: symptoms (triage), a lab-report question (report interpretation),
#: medication, cost, anything else.
Intent = Literal["symptom", "report", "medication", "cost", "other"]
INTENTS: tuple[str, ...] = get_args(Intent)

Sex = Literal["male", "female", "other", "unknown"]

#: The emergency number and the advice given whenever a red flag is found.
EMERGENCY_ADVICE = "可能存在危及生命的情况，请立即拨打120急救电话或马上到最近医院的急诊科就诊，不要自行驾车。"
EMERGENCY_ADVICE_EN = ("This may be life-threatening: call 120 now or go to the nearest emergency "
                       "department at once; do not drive yourself.")

#: Department code of the emergency department in the national list.
EMERGENCY = "20"
PAEDIATRICS = "07"
PAEDIATRIC_SURGERY = "08"
OBSTETRICS = "05.02"
GENERAL_PRACTICE = "02"
