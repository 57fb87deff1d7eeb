"""Rule sets shipped with Rongguan (YAML lists of RuleConfig)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import TypeAdapter

from contracts.config import RuleConfig

__all__ = ["load_default_rules", "load_rules_file", "DEFAULT_RULES"]

DEFAULT_RULES = Path(__file__).with_name("chengdu.yaml")


def load_rules_file(path: Path) -> list[RuleConfig]:
    """Load and validate a YAML list of rules."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return TypeAdapter(list[RuleConfig]).validate_python(data)


def load_default_rules() -> list[RuleConfig]:
    """The default Chengdu rule set: one rule per domain and cable theft."""
    return load_rules_file(DEFAULT_RULES)
