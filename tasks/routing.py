"""Local routing rules (R13): sender domain, subject/body keywords or regular expressions →
category, group, priority, tags. Evaluated in order; the first rule that matches wins.

Pure. Keywords match case- and accent-insensitively ("facturacion" finds "Facturación"), because
people type both. Within a rule every given condition must hold; within a list any entry may.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field


def fold(text: str) -> str:
    """Lower-case without accents, for keyword matching only (the request keeps its accents)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class RoutingRule:
    name: str
    sender_domains: tuple[str, ...] = ()
    subject_keywords: tuple[str, ...] = ()
    body_keywords: tuple[str, ...] = ()
    subject_regex: str | None = None
    body_regex: str | None = None
    category: str | None = None
    group: str | None = None
    priority: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def matches(self, sender: str, subject: str, body: str) -> bool:
        domain = sender.rpartition("@")[2].lower()
        if self.sender_domains and not any(
            domain == d.lower().lstrip("@") or domain.endswith("." + d.lower().lstrip("@"))
            for d in self.sender_domains
        ):
            return False
        if self.subject_keywords and not any(fold(k) in fold(subject) for k in self.subject_keywords):
            return False
        if self.body_keywords and not any(fold(k) in fold(body) for k in self.body_keywords):
            return False
        if self.subject_regex and not re.search(self.subject_regex, subject, re.IGNORECASE):
            return False
        return not (self.body_regex and not re.search(self.body_regex, body, re.IGNORECASE))


def first_match(rules: Sequence[RoutingRule], sender: str, subject: str, body: str) -> RoutingRule | None:
    for rule in rules:
        if rule.matches(sender or "", subject or "", body or ""):
            return rule
    return None
