"""Statistics and indicators (卫生统计): live counters, views over the record, reporting."""
