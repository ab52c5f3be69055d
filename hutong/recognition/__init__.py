"""Result mutual recognition (检查检验结果互认): the catalog, the result index, the order-time answer
(CDS Hooks), HL7 v2 lab results in, and what recognition saves. See ``docs/recognition.md``."""
