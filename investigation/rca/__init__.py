"""Root-cause ranking (pure: no Django, no network, no clock). See docs/investigation.md."""
from .calibration import confidences
from .case import Case, CaseError, LogLine, TraceSummary, build_case, load_case
from .feedback import Feedback, FeedbackRecord, evidence_signature
from .ranking import RankedService, rank_root_causes

__all__ = ["Case", "CaseError", "LogLine", "TraceSummary", "build_case", "load_case", "RankedService",
           "rank_root_causes", "confidences", "Feedback", "FeedbackRecord", "evidence_signature"]
