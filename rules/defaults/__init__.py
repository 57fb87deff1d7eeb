"""Rule sets shipped with Rongguan (YAML lists of RuleConfig)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import TypeAdapter

from contracts.config import AnyRuleConfig

__all__ = ["load_default_rules", "load_rules_file", "DEFAULT_RULES"]

DEFAULT_RULES = Path(__file__).with_name("chengdu.yaml")


def load_rules_file(path: Path) -> list[AnyRuleConfig]:
    """Load and validate a YAML list of rules."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return TypeAdapter(list[AnyRuleConfig]).validate_python(data)


def load_default_rules() -> list[AnyRuleConfig]:
    """The default Chengdu rule set: thresholds and the other families."""
    return load_rules_file(DEFAULT_RULES)
