"""The registry report of a cohort, in the manner of ProDERM (NEJM 2022; Arthritis Res Ther 2024).

Input: the per-patient summary records (:class:`fhirtis.pipeline.records.PatientSummary`), as
`fhirtis evaluate --json` prints them (``{"results": [...]}``) or as NDJSON (one record a line,
what `fhirtis cohort --summaries` writes). No FHIR is read here: :func:`load_summaries` reads
the records (:func:`iter_summaries` one at a time), :func:`build_report` computes the
:class:`Report`, and the writers print it
(:func:`print_report`), save it (:func:`write_csv`, :func:`write_json`) and plot it
(:func:`write_plots`).

How each figure is counted (clinical spec §2.3, §2.4, §3, §4, §5):

* **Response** is taken at each patient's last follow-up assessment (and, when asked, at the
  assessment nearest a named week after baseline, within ``week_window_days``). The category is
  recomputed from the TIS with the patient's own population thresholds (adult 20/40/60, juvenile
  30/45/70, :data:`fhirtis.clinical.tis.THRESHOLDS`).
* A **partial TIS** is never turned into a number. ``partial_policy="interval"`` (default,
  clinical spec §2.4) counts it in a category only when both ends of its interval fall in that same
  category, else as *undetermined*; ``partial_policy="undetermined"`` counts every partial TIS as
  undetermined. Partial TIS are always counted separately as well.
* **Responder** (ProDERM): TIS ≥ the minimal threshold and no confirmed deterioration at or
  before the assessment. With a partial TIS the lower end must reach the threshold to be a
  responder and the upper end must miss it to be a non-responder; otherwise (or when the
  deterioration status is unknown) the status is *undetermined*: it is counted apart and left out
  of the denominator of the responder percentage, whose 95 % CI is Wilson's score interval.
* **IVIG**: among exposed patients (≥ 1 cycle). Medians and quartiles use
  :func:`statistics.median` and :func:`statistics.quantiles` with ``method="inclusive"`` (the
  linear interpolation of R type 7 / numpy's default) over exact decimals. A cumulative dose that
  is partial (``None`` in the record: some grams or g/kg unknown) is left out and counted.
* **TEE**: temporally associated events (``thrombosis.associated_events``); records of one kind
  and one onset are one event (one thromboembolism on the problem list, as an encounter
  diagnosis or in another system's safety report), counted once, with a warning: onsets are
  compared as instants whatever their UTC offsets, and as days where one gives no time (as
  fhirtis merges them); records naming other cycles stay apart. Per 100 infusion
  cycles = events × 100 / cycles. By infusion-rate stratum, each cycle falls in ``≤ limit`` or
  ``> limit`` by its maximum rate (``rate_threshold``, default 4 mg/kg/min; unknown rate: its own
  stratum) and an event counts once in each stratum holding a cycle it is associated with (an
  event associated with cycles of two strata counts in both; how often that happened is reported).
* **Risk factors** are those at each patient's last record (``thrombosis.risk_factors``), not at
  the infusions. A TEE is a history risk factor from its onset on (clinical spec §5.3), so a
  thrombosis history that only the patient's own associated TEEs show (every record in
  ``risk_evidence["thrombosis-history"]`` is one of them) is the outcome, not a factor before
  it: it is tabulated as ``thrombosis-history-from-associated-tee``, apart from
  ``thrombosis-history`` (shown by another record: an event before IVIG, a coded history, an
  event outside every window), and not counted in ``patients_with_risk_factor``. The clinical
  rule (the Flag, the rate limit, the summary record) is unchanged.

Numbers are exact (:class:`~fractions.Fraction`, :class:`~decimal.Decimal`) until output, where
percentages are rounded half-up to 1 decimal place and rates to 2; the Wilson interval is the
only floating-point figure.
"""

from fhirtis.registry.report.model import (
    CATEGORIES,
    CATEGORY_COLUMNS,
    DEFAULT_RATE_THRESHOLD,
    UNDETERMINED,
    IvigSummary,
    PatientRow,
    RateStratum,
    Report,
    ReportInputError,
    ReportOptions,
    ResponseSummary,
    TeeSummary,
    Trajectory,
    TrajectoryPoint,
    build_report,
    iter_summaries,
    load_summaries,
)
from fhirtis.registry.report.plots import PLOT_FILES, figures, write_plots
from fhirtis.registry.report.render import CSV_COLUMNS, print_report, write_csv, write_json
from fhirtis.registry.report.stats import (
    Proportion,
    Spread,
    round_half_up,
    spread,
    wilson_interval,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_COLUMNS",
    "CSV_COLUMNS",
    "DEFAULT_RATE_THRESHOLD",
    "PLOT_FILES",
    "UNDETERMINED",
    "IvigSummary",
    "PatientRow",
    "Proportion",
    "RateStratum",
    "Report",
    "ReportInputError",
    "ReportOptions",
    "ResponseSummary",
    "Spread",
    "TeeSummary",
    "Trajectory",
    "TrajectoryPoint",
    "build_report",
    "figures",
    "iter_summaries",
    "load_summaries",
    "print_report",
    "round_half_up",
    "spread",
    "wilson_interval",
    "write_csv",
    "write_json",
    "write_plots",
]
