"""Kubernetes label-selector matching, as a pure function over the API models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ironlb.api.common import LabelSelector


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """matchLabels AND every matchExpression; an empty selector matches everything."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.match_expressions or ():
        present = expression.key in labels
        values = set(expression.values or ())
        if expression.operator == "In" and not (present and labels[expression.key] in values):
            return False
        if expression.operator == "NotIn" and present and labels[expression.key] in values:
            return False
        if expression.operator == "Exists" and not present:
            return False
        if expression.operator == "DoesNotExist" and present:
            return False
    return True


def any_selector_matches(selectors: Iterable[LabelSelector], labels: Mapping[str, str]) -> bool:
    """MetalLB's rule for selector lists: no selectors means no restriction, otherwise any one must match."""
    selectors = list(selectors)
    return not selectors or any(selector_matches(selector, labels) for selector in selectors)
