"""Named heuristic rules: a score, then a keep decision, grouped into families that run in order.

A rule's full name is `family.rule` (`gopher_quality.word_count`); that name is the reason a
dropped document carries, and the name a config uses to switch the rule off. A family may
rewrite the text before its rules run (C4 removes lines), and later families see the new text.

A rule whose score only means something in some languages (English stop words, whitespace
words) says which in `knows`; on a text in another language it is skipped, not failed, and
the skip is reported, so a German page is never dropped for lacking English words and the
run's statistics say which rules did not judge which languages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

from pydantic import BaseModel, ConfigDict

from filters.textstats import TextStats


class Thresholds(BaseModel):
    """Base of a family's tunable thresholds: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Rule:
    name: str
    score: Callable[[TextStats], float]
    keep: Callable[[float], bool]
    knows: Callable[[str], bool] | None = None  # language code -> whether the rule applies; None: every language


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda score: score <= limit


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda score: score >= limit


def between(low: float, high: float) -> Callable[[float], bool]:
    return lambda score: low <= score <= high


class RuleFamily:
    """A published set of rules with its thresholds. Subclasses list `rules()` in the published order."""

    name: ClassVar[str]
    Config: ClassVar[type[Thresholds]]

    def __init__(self, config: Thresholds | None = None, disabled: Iterable[str] = ()):
        self.config = config or self.Config()
        self.disabled = frozenset(disabled)
        unknown = self.disabled - set(self.rule_names())
        if unknown:
            known = ", ".join(self.rule_names())
            raise ValueError(f"{self.name} has no rule {', '.join(sorted(unknown))} (its rules: {known})")
        self.active = [r for r in self.rules() if r.name not in self.disabled]

    def rules(self) -> list[Rule]:
        """The document-level rules, in the order they are checked."""
        raise NotImplementedError

    def rule_names(self) -> list[str]:
        return [r.name for r in self.rules()]

    def enabled(self, rule_name: str) -> bool:
        return rule_name not in self.disabled

    def apply(self, stats: TextStats) -> tuple[str | None, TextStats, list[str]]:
        """(name of the first rule that drops the document or None, stats of the possibly rewritten text,
        names of the rules reached but skipped because they do not know the text's language)."""
        skipped = []
        for rule in self.active:
            if rule.knows is not None and not rule.knows(stats.lang):
                skipped.append(f"{self.name}.{rule.name}")
            elif not rule.keep(rule.score(stats)):
                return f"{self.name}.{rule.name}", stats, skipped
        return None, stats, skipped


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0
