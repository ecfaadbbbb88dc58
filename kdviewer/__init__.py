"""kdviewer: an offline chest X-ray viewer with a knowledge-distilled CNN.

Research use only, not for diagnosis.
"""

__version__ = "0.1.0"

RESEARCH_NOTICE = "Research use only — not for diagnosis."
