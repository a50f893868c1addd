"""What a displayed section leaves in its notebook output's metadata: the keys and a record's statuses.

Written by `workbench.sections`, read back by `workbench.run` (records, report); kept apart from
both so that reading a notebook's records imports no analysis.
"""

#: Where a section's record sits in its first output's metadata.
RECORD_KEY = "workbench_section"
#: Marks an output for the report's appendix of methods and detail tables (its value: the section's title).
DETAIL_KEY = "workbench_detail"
OK, NOT_APPLICABLE, FAILED = "ok", "not_applicable", "failed"
STATUSES = (OK, NOT_APPLICABLE, FAILED)
