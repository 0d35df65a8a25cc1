"""The build report: one plain-data model (a dict that is the JSON report) and its renderers."""

REPORT_SCHEMA = "trtc.report/1"
