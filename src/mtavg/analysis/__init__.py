"""Analyses over annotations and runs: generator failure rates (Eq. 9), error counts, co-occurrence,
and how automatic metrics track failure rates."""

from mtavg.analysis.failures import (
    Cooccurrence,
    average_rates,
    cooccurrence_correlation,
    error_count_distribution,
    failure_mode_rates,
    failure_rates,
    failure_summary,
    rates_matrix,
)
from mtavg.analysis.metrics_link import MetricFailureLink, failure_target, metric_failure_links

__all__ = [
    "Cooccurrence",
    "MetricFailureLink",
    "average_rates",
    "cooccurrence_correlation",
    "error_count_distribution",
    "failure_mode_rates",
    "failure_rates",
    "failure_summary",
    "failure_target",
    "metric_failure_links",
    "rates_matrix",
]
