"""Building blocks shared by every IronLB custom resource: naming, label selectors, conditions.

The models here are the single source of the CRD schemas (see ``ironlb.operator.crdgen``) and also parse the
objects the operator reads from the API server, so the two can never disagree about a field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "ironlb.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
UINT32_MAX = 4_294_967_295
INT64_MAX = 9_223_372_036_854_775_807


def cel(rule: str, message_expression: str, *, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry whose message names the offending value, not only its type."""
    entry = {"rule": rule, "messageExpression": message_expression}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """The ``json_schema_extra`` carrying CEL rules into the generated schema."""
    return {"x-kubernetes-validations": list(rules)}


def list_set(**extra: Any) -> dict[str, Any]:
    """A list whose items must be unique: the API server itself rejects duplicates, naming the index."""
    return {"x-kubernetes-list-type": "set", **extra}


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields ignored.

    Unknown fields are ignored rather than rejected because the API server has already pruned what the CRD
    does not declare; an older operator reading a newer object must keep working.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


LabelValue = str


class LabelSelectorRequirement(ApiModel):
    """One expression of a Kubernetes label selector."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "'values must be non-empty for operator In/NotIn and empty for Exists/DoesNotExist;"
                " operator is ' + self.operator",
                field_path=".values",
            )
        )
    )

    key: str = Field(min_length=1, max_length=317, description="The label key the selector applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the key relates to the values."
    )
    values: list[LabelValue] | None = Field(
        default=None, max_length=64, description="Values for In and NotIn; empty for Exists and DoesNotExist."
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector (matchLabels AND matchExpressions)."""

    match_labels: dict[str, str] | None = Field(
        default=None, description="Labels that must all be present with these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Expressions that must all hold."
    )


class Condition(ApiModel):
    """A standard Kubernetes condition (the shape of metav1.Condition)."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the condition holds.")
    reason: str = Field(default="", max_length=1024, description="One-word CamelCase reason.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime | None = Field(default=None, description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )


class StatusBase(ApiModel):
    """What every IronLB status carries: standard conditions and the generation they describe."""

    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Standard conditions; Ready tells whether the object is in use.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the status was computed from."
    )


SELECTOR_LIST_MAX = 32
NAME_LIST_MAX = 128
