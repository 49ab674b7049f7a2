"""Every configurable clinical choice of the clinical spec, with its documented default.

The clinical spec marks a rule **[choice]** where no source fixes it. Each such rule is a field of
:class:`Policy` below, named as in the clinical spec, with the default it gives. Every result
the clinical core returns records the policy it used (:meth:`Policy.as_record`), so a number
can always be traced to the choices behind it.

Fields not marked [choice] in the clinical spec but still numbers a site may need to see
(the regimen target, the boxed-warning rate limits) live here too, documented as fixed by their
source; changing them is possible but is a deliberate departure from the specification.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Population(StrEnum):
    """Which ACR/EULAR response criteria apply."""

    ADULT = "adult"
    JUVENILE = "juvenile"


class EnzymeChange(StrEnum):
    """How the enzyme's percent improvement is computed (clinical spec §2.1)."""

    RELATIVE = "relative"
    """(baseline − follow-up) / baseline × 100 — the default."""
    ABOVE_ULN = "above_uln"
    """(baseline − follow-up) / (baseline − ULN) × 100, defined only when baseline > ULN."""


class EnzymeNormalBaseline(StrEnum):
    """What to do with an enzyme that is normal (≤ ULN) at baseline (clinical spec §2.1)."""

    SCORE = "score"
    """Compute the percent improvement as for any other baseline — the default."""
    NO_CREDIT = "no_credit"
    """The enzyme measure scores 0."""


class WorseningBasis(StrEnum):
    """Basis of percent worsening in the deterioration rules (clinical spec §3)."""

    RELATIVE = "relative"
    """Relative to the baseline value — the default (falls back to absolute when baseline is 0)."""
    ABSOLUTE = "absolute"
    """Relative to the instrument's range, like the TIS."""


class DosingWeightBasis(StrEnum):
    """Body weight used to express IVIG doses and rates per kg (clinical spec §4)."""

    ACTUAL = "actual"
    IDEAL = "ideal"
    ADJUSTED = "adjusted"


ENZYME_TIE_ORDER_DEFAULT: tuple[str, ...] = ("ck", "aldolase", "ldh", "ast", "alt")

LABEL_MAX_RATE_MG_KG_MIN = Decimal(4)
"""The label's maximum IVIG rate in dermatomyositis (Octagam 10% PI; clinical spec §5.2)."""
LABEL_MAX_RATE_WITH_RISK_MG_KG_MIN = Decimal("3.3")
"""The label's maximum with any thrombosis risk factor (clinical spec §5.2)."""
LABEL_LIMIT_FIELDS = frozenset({"max_rate_mg_kg_min", "max_rate_with_risk_mg_kg_min"})
"""Policy fields holding the label's limits: a site may lower them, nothing may raise them, and
no request may change them for a result that is written back (clinical spec §5.2)."""


class Policy(BaseModel):
    """The clinical choices in force for one computation.

    Field names match the clinical spec so a site can read the spec and set the same names
    (``FHIRTIS_POLICY__CYCLE_GAP_DAYS=10``, a settings file, or an operation parameter).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # §1 most abnormal enzyme
    enzyme_tie_order: tuple[str, ...] = Field(
        ENZYME_TIE_ORDER_DEFAULT,
        description="[choice] order that breaks ties of value/ULN when choosing the most "
        "abnormal enzyme at baseline",
    )
    # §2.1 percent improvement
    enzyme_change: EnzymeChange = Field(
        EnzymeChange.RELATIVE, description="[choice] enzyme percent improvement formula"
    )
    enzyme_normal_baseline: EnzymeNormalBaseline = Field(
        EnzymeNormalBaseline.SCORE,
        description="[choice] scoring of an enzyme that is ≤ ULN at baseline",
    )
    # §2.3 population
    juvenile_onset_age: int = Field(
        18,
        ge=0,
        le=120,
        description="[choice] age at onset (years) below which juvenile criteria apply",
    )
    # §2.5 assessments
    assessment_window_days: int = Field(
        7, ge=0, le=90, description="[choice] ± days around an anchor date for the other measures"
    )
    baseline_lookback_days: int = Field(
        28, ge=0, le=365, description="[choice] how long before the first IVIG a baseline may be"
    )
    # §3 deterioration
    worsening_basis: WorseningBasis = Field(
        WorseningBasis.RELATIVE, description="[choice] basis of percent worsening"
    )
    # §4 IVIG exposure
    cycle_gap_days: int = Field(
        7, ge=1, le=60, description="[choice] a gap of more than this many days starts a new cycle"
    )
    weight_max_age_days: int = Field(
        30, ge=0, le=3650, description="[choice] older weights are used with a stale-weight warning"
    )
    weight_plausible_kg: tuple[Decimal, Decimal] = Field(
        (Decimal("0.5"), Decimal(350)),
        description="[choice] a body weight outside this range (kg) is implausible: excluded",
    )
    height_plausible_cm: tuple[Decimal, Decimal] = Field(
        (Decimal(30), Decimal(250)),
        description="[choice] a body height outside this range (cm) is implausible: excluded",
    )
    weight_jump_percent: Decimal = Field(
        Decimal(25),
        gt=0,
        description="[choice] a weight differing from the previous one within 14 days by more "
        "than this % is implausible: excluded",
    )
    dosing_weight: DosingWeightBasis = Field(
        DosingWeightBasis.ACTUAL, description="[choice] dosing weight basis"
    )
    target_dose_g_per_kg: Decimal = Field(
        Decimal(2),
        gt=0,
        description="regimen target per cycle (2 g/kg, Octagam PI; 1 g/kg in ProDERM's extension)",
    )
    dose_tolerance_percent: Decimal = Field(
        Decimal(10), ge=0, description="warn when a cycle's g/kg is more than this % off target"
    )
    cycle_interval_days: int = Field(28, ge=1, description="expected days between cycle starts")
    cycle_interval_tolerance_days: int = Field(7, ge=0, description="± tolerance on that interval")
    max_cycle_span_days: int = Field(5, ge=1, description="warn when a cycle spans more days")
    # §5 thrombosis
    advanced_age_years: int = Field(
        65,
        ge=0,
        le=120,
        description="[choice] age at or above which advanced age is a risk factor",
    )
    inflammation_pga_cm: Decimal = Field(
        Decimal(7),
        ge=0,
        le=10,
        description="[choice] PGA (cm) at or above which inflammation counts as poorly controlled",
    )
    obesity_bmi: Decimal = Field(Decimal(30), gt=0, description="BMI at or above which obesity")
    max_rate_mg_kg_min: Decimal = Field(
        LABEL_MAX_RATE_MG_KG_MIN,
        gt=0,
        le=LABEL_MAX_RATE_MG_KG_MIN,
        description="maximum IVIG rate in dermatomyositis (Octagam 10% PI); may be lowered, "
        "never raised",
    )
    max_rate_with_risk_mg_kg_min: Decimal = Field(
        LABEL_MAX_RATE_WITH_RISK_MG_KG_MIN,
        gt=0,
        le=LABEL_MAX_RATE_WITH_RISK_MG_KG_MIN,
        description="maximum rate with any thrombosis risk factor (PI); may be lowered, never "
        "raised",
    )
    tee_window_days: int = Field(
        14,
        ge=0,
        le=90,
        description="[choice] days after a cycle's last administration within which a TEE is "
        "temporally associated",
    )
    tee_early_hours: int = Field(24, ge=0, description="onset within this many hours is 'early'")

    @field_validator(
        "enzyme_tie_order", "weight_plausible_kg", "height_plausible_cm", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A list as a result reports it ("ck,aldolase,ldh,ast,alt", "0.5,350"), so that a
        reported policy block, an operation's ``valueString`` or a calculator's "policy" can set
        it again."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(","))
        return value

    @field_validator("enzyme_tie_order")
    @classmethod
    def _five_enzymes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Any order of the five enzymes (names read case-insensitively), each once: a name
        that is not one of them would silently move an enzyme to the end of the order."""
        names = tuple(name.strip().lower() for name in value)
        if sorted(names) != sorted(ENZYME_TIE_ORDER_DEFAULT):
            raise ValueError(
                "enzyme_tie_order must list ck, aldolase, ldh, ast and alt, each once, in any order"
            )
        return names

    @field_validator("weight_plausible_kg", "height_plausible_cm")
    @classmethod
    def _low_to_high(
        cls, value: tuple[Decimal, Decimal], info: ValidationInfo
    ) -> tuple[Decimal, Decimal]:
        low, high = value
        if not low <= high:
            raise ValueError(f"{info.field_name} must be [low, high] with low ≤ high")
        return value

    @property
    def rate_limits(self) -> tuple[Decimal, Decimal]:
        """The maximum infusion rates a rate may be held against (mg/kg/min): without and with a
        thromboembolism risk factor."""
        return (self.max_rate_mg_kg_min, self.max_rate_with_risk_mg_kg_min)

    def as_record(self) -> dict[str, str]:
        """The policy as flat strings, for results, reports and derived resources (a fresh
        dict each time, made once per policy object: the policy is frozen). Kept by the
        object's identity, not its hash: hashing a model hashes every field, on every call."""
        return dict(_RECORDS(self))


_T = TypeVar("_T")


class PerPolicy(Generic[_T]):
    """``make(policy)``, made once per policy object: a policy is frozen, so what is made from
    it is the object's. Kept by the object's identity, not by its hash (hashing a model hashes
    every field, on every call); an entry holds its policy, so the id is not reused while the
    entry lives. At most ``size`` policies are kept (a run has one)."""

    def __init__(self, make: Callable[[Policy], _T], size: int = 64) -> None:
        self._make, self._size = make, size
        self._made: dict[int, tuple[Policy, _T]] = {}

    def __call__(self, policy: Policy) -> _T:
        entry = self._made.get(id(policy))
        if entry is None or entry[0] is not policy:
            if len(self._made) >= self._size:
                self._made.clear()
            entry = self._made[id(policy)] = (policy, self._make(policy))
        return entry[1]


def _record_of(policy: Policy) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in policy.model_dump(mode="json").items():
        if isinstance(value, list):
            out[name] = ",".join(value)
        elif isinstance(raw := getattr(policy, name), Decimal) and raw.is_finite():
            out[name] = f"{raw:f}"  # never in exponent notation ("50", not "5E+1")
        else:
            out[name] = str(value)
    return out


_RECORDS = PerPolicy(_record_of)

DEFAULT_POLICY = Policy()
