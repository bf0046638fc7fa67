"""HTML reports: the quickstart's report.html (images, audio players, video, loss curves, evaluation table)."""

from omnitok.report.html import TARGETS, write_report

__all__ = ["TARGETS", "write_report"]
