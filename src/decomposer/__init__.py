"""decomposer: vendor docs -> evidence-backed capability records -> "A vs B" pages."""

__version__ = "0.1.0"
