"""`report.html` of a build: the page a data engineer opens first (see page.py)."""
from instruct.report.page import write_report

__all__ = ["write_report"]
