"""The recognition capability's own tables: the result index, the prompts offered with their outcome,
and HL7 v2 messages kept for review."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, String, Table, Text

from hutong.store.schema import metadata

#: One row per (result, coding): every Observation, DiagnosticReport and ImagingStudy the platform
#: holds, by patient and code, with its time, institution and a short summary for the card. Kept by
#: the ``recognition-index`` change-log consumer; independent of the catalog (matched at order time).
recognition_result = Table(
    "recognition_result", metadata,
    Column("res_type", String(32), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("code", String(320), primary_key=True),      # system|code
    Column("tenant", String(32), nullable=False),
    Column("patient", String(64), nullable=False),      # Patient id
    Column("institution", String(64)),                  # Organization id that produced it
    Column("effective_us", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("hidden", Boolean, nullable=False, default=False),  # withheld from other institutions (consent)
    Column("summary", Text, nullable=False),            # JSON: title, value, conclusion
    Index("ix_recognition_result_lookup", "patient", "code", "effective_us"),
)

#: One row per recognisable result offered on a card, with what the doctor did about it.
recognition_offer = Table(
    "recognition_offer", metadata,
    Column("card", String(64), primary_key=True),        # the card's uuid
    Column("suggestion", String(64), nullable=False),    # the delete suggestion's uuid
    Column("service", String(64), nullable=False),
    Column("hook_instance", String(64), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("tenant", String(32), nullable=False),
    Column("institution", String(64)),                   # ordering institution (Organization id)
    Column("institution_level", String(8)),
    Column("department", String(128)),
    Column("practitioner", String(128), nullable=False),  # context.userId
    Column("patient", String(64), nullable=False),       # the platform's Patient id
    Column("draft_order", String(128), nullable=False),  # ServiceRequest/… in the HIS
    Column("item", String(64), nullable=False),          # catalog ActivityDefinition id
    Column("category", String(32), nullable=False),
    Column("result", String(100), nullable=False),       # DiagnosticReport/… at the other institution
    Column("result_institution", String(64)),
    Column("price", Float, nullable=False, default=0.0),
    Column("outcome", String(16)),                       # None until feedback: accepted | overridden
    Column("reason", String(32)),
    Column("comment", Text),
    Column("outcome_us", BigInteger),
    Index("ix_recognition_offer_ts", "ts_us"),
    Index("ix_recognition_offer_practitioner", "practitioner", "ts_us"),
)

#: HL7 v2 messages that could not be stored (NAKed), kept for an operator to review.
recognition_hl7_rejected = Table(
    "recognition_hl7_rejected", metadata,
    Column("id", String(64), primary_key=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("via", String(8), nullable=False),            # mllp | http
    Column("control_id", String(64)),
    Column("sender", String(128)),
    Column("code", String(4), nullable=False),           # AE | AR
    Column("error", Text, nullable=False),
    Column("message", Text, nullable=False),             # the raw message (decoded, or latin-1 if not decodable)
    Index("ix_recognition_hl7_rejected_ts", "ts_us"),
)



#: Hospital systems registered to call the CDS services: the JWT issuer, where its public keys are
#: (``jku``, or the key set itself), and the institution it speaks for.
recognition_cds_client = Table(
    "recognition_cds_client", metadata,
    Column("iss", String(255), primary_key=True),
    Column("jku", String(1000)),
    Column("jwks", Text),                                # JSON key set when the keys are registered inline
    Column("institution", String(64), nullable=False),  # Organization id
    Column("active", Boolean, nullable=False, default=True),
    Column("created_us", BigInteger, nullable=False),
)

#: JWT ids already used, per issuer, until they expire (a token works once).
recognition_cds_jti = Table(
    "recognition_cds_jti", metadata,
    Column("iss", String(255), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_us", BigInteger, nullable=False),
    Index("ix_recognition_cds_jti_expires", "expires_us"),
)
#: Reports received over HL7 v2, by sending institution and report number (OBR-3, else OBR-2): a
#: resent or corrected report updates the one stored (one key lookup, not a search per message).
recognition_hl7_report = Table(
    "recognition_hl7_report", metadata,
    Column("institution", String(64), primary_key=True),
    Column("number", String(64), primary_key=True),
    Column("report_id", String(64), nullable=False),     # DiagnosticReport id
    Column("ts_us", BigInteger, nullable=False),
)

TABLES = (recognition_result, recognition_offer, recognition_hl7_rejected, recognition_cds_client, recognition_cds_jti,
          recognition_hl7_report)
