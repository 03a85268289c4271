"""PII scrubbing: typed placeholders for e-mails, phones, IPs, cards, IBANs, SSNs, secrets, addresses."""
from instruct.pii.detectors import PLACEHOLDERS, TYPES, Span, detectors, find_pii, redact

__all__ = ["PLACEHOLDERS", "TYPES", "Span", "detectors", "find_pii", "redact"]
