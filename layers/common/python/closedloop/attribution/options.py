"""Model names and the options every attribution model honours."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ALL_MODELS",
    "DATA_DRIVEN_MODELS",
    "RULE_BASED_MODELS",
    "AttributionModel",
    "AttributionOptions",
]

_WEIGHT_TOLERANCE = 1e-9


class AttributionModel(StrEnum):
    """The attribution models, by the name used in outputs (Parquet, CSV, CLI)."""

    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LAST_NON_DIRECT = "last_non_direct"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"
    """U-shaped: first and last touch weighted, the rest spread in between."""
    W_SHAPED = "w_shaped"
    FULL_PATH = "full_path"
    """Z-shaped: first, lead-creation, opportunity-creation and closing touch."""
    J_SHAPED = "j_shaped"
    INVERSE_J_SHAPED = "inverse_j_shaped"
    MARKOV = "markov"
    SHAPLEY = "shapley"


RULE_BASED_MODELS: tuple[AttributionModel, ...] = (
    AttributionModel.FIRST_TOUCH,
    AttributionModel.LAST_TOUCH,
    AttributionModel.LAST_NON_DIRECT,
    AttributionModel.LINEAR,
    AttributionModel.TIME_DECAY,
    AttributionModel.POSITION_BASED,
    AttributionModel.W_SHAPED,
    AttributionModel.FULL_PATH,
    AttributionModel.J_SHAPED,
    AttributionModel.INVERSE_J_SHAPED,
)
DATA_DRIVEN_MODELS: tuple[AttributionModel, ...] = (AttributionModel.MARKOV, AttributionModel.SHAPLEY)
ALL_MODELS: tuple[AttributionModel, ...] = RULE_BASED_MODELS + DATA_DRIVEN_MODELS

Weight = Annotated[float, Field(ge=0.0)]


def _check_weights(weights: tuple[float, ...]) -> tuple[float, ...]:
    total = math.fsum(weights)
    if abs(total - 1.0) > _WEIGHT_TOLERANCE:
        raise ValueError(f"weights must sum to 1, got {total:g}")
    return weights


class AttributionOptions(BaseModel):
    """Options shared by every model.

    The grouping level (channel, "source / medium", campaign) is not an option here: it is how
    the caller encodes touches into channel codes (see ``JourneyBatch.regroup``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lookback_days: Annotated[float | None, Field(gt=0.0)] = 90.0
    """Touches older than this before the conversion are ignored; ``None`` keeps every touch."""
    excluded_channels: frozenset[str] = frozenset()
    """Channels that get no credit when the journey has another touch (e.g. ``{"Direct"}``)."""
    exclude_direct: bool = False
    """Treat every touch flagged ``is_direct`` as excluded, whatever its name at the grouping level."""
    half_life_days: Annotated[float, Field(gt=0.0)] = 7.0
    """Time decay: a touch this long before the conversion gets half the weight of one at it."""
    position_based_weights: tuple[Weight, Weight, Weight] = (0.4, 0.2, 0.4)
    """U-shaped: (first, spread over the middle, last)."""
    w_shaped_weights: tuple[Weight, Weight, Weight, Weight] = (0.3, 0.3, 0.3, 0.1)
    """(first, lead creation, opportunity creation, spread over the other touches)."""
    full_path_weights: tuple[Weight, Weight, Weight, Weight, Weight] = (0.225, 0.225, 0.225, 0.225, 0.1)
    """Z-shaped: (first, lead creation, opportunity creation, closing touch, spread over the others)."""
    j_shaped_weights: tuple[Weight, Weight, Weight] = (0.2, 0.2, 0.6)
    """(first, spread over the middle, last): the J rises towards the conversion."""
    inverse_j_shaped_weights: tuple[Weight, Weight, Weight] = (0.6, 0.2, 0.2)
    """(first, spread over the middle, last)."""
    markov_order: Annotated[int, Field(ge=1, le=8)] = 1
    """Order of the Markov chain: a state is the last ``markov_order`` channels."""
    markov_max_states: Annotated[int, Field(ge=2)] = 3000
    """Refuse chains with more transient states than this (the exact solve is dense, O(states^3))."""
    shapley_max_exact: Annotated[int, Field(ge=1, le=20)] = 12
    """Journeys with at most this many distinct channels get exact Shapley values (2^k coalitions)."""
    shapley_samples: Annotated[int, Field(ge=1)] = 2000
    """Permutations sampled for journeys with more distinct channels than ``shapley_max_exact``."""
    shapley_prior_journeys: Annotated[float, Field(ge=0.0)] = 100.0
    """Shrinkage of a channel set's observed conversion rate towards the logistic model, in journeys:
    a set seen in far fewer journeys than this leans on the model (rare sets are noisy)."""
    seed: int = 0
    """Seed of the only random step (Shapley permutation sampling); results are deterministic."""

    @field_validator(
        "position_based_weights",
        "w_shaped_weights",
        "full_path_weights",
        "j_shaped_weights",
        "inverse_j_shaped_weights",
    )
    @classmethod
    def _weights_sum_to_one(cls, weights: tuple[float, ...]) -> tuple[float, ...]:
        return _check_weights(weights)

    @field_validator("excluded_channels", mode="before")
    @classmethod
    def _names_as_set(cls, value: object) -> object:
        # A single name is a common slip ("Direct" would become {"D", "i", ...}).
        if isinstance(value, str):
            return frozenset({value})
        return value

    @model_validator(mode="after")
    def _finite(self) -> Self:
        if self.lookback_days is not None and not math.isfinite(self.lookback_days):
            raise ValueError("lookback_days must be finite (use None for no window)")
        if not math.isfinite(self.half_life_days):
            raise ValueError("half_life_days must be finite")
        return self

    @property
    def lookback_seconds(self) -> float | None:
        """The lookback window in seconds, or ``None``."""
        return None if self.lookback_days is None else self.lookback_days * 86_400.0
