"""Lab-report interpretation (智能报告解读): each result with its unit converted, the reference
interval used and its source, a flag, and a plain-Chinese explanation; critical values raised to
the ordering doctor."""
