"""`workbench run`: run specifications (params), segments, the runner, what a worker runs (jobs),
executors, run files, secrets, reports, section records and summaries."""
from .lighter import defer_rfc3987_syntax

defer_rfc3987_syntax()
