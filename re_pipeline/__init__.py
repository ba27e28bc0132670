"""re_pipeline: a Korean relation-extraction pipeline for KLUE-RE style competitions."""

__version__ = "0.1.0"
