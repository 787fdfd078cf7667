"""Outlier detection with trained likelihood models (``unsup ood``).

A model of the in-distribution data scores each input; a metric says how well the score separates
the in-distribution test inputs from outliers. One module per idea:

* :mod:`unsup.ood.likelihood`: the plain likelihood and the likelihood ratio against a background
  model trained on mutated inputs (Ren et al. 2019), with the rule that picks the noise rate from
  in-distribution data only;
* :mod:`unsup.ood.complexity`: the likelihood minus a real lossless codec's length (Serrà et al. 2020);
* :mod:`unsup.ood.typicality`: the typicality test on batches (Nalisnick et al. 2019);
* :mod:`unsup.ood.metrics`: AUROC, AUPR and FPR at 95 % TPR (outliers positive, every score
  higher = more outlying);
* :mod:`unsup.ood.sets`: outlier sets converted to the run's shape and levels, and synthetic ones;
* :mod:`unsup.ood.report`: all of it on one run, as JSON, a table and histograms.
"""

from unsup.ood.metrics import ood_metrics
from unsup.ood.report import Background, format_table, ood_report, save_histograms
from unsup.ood.sets import OutlierSet, convert, load_outlier_set

__all__ = ["Background", "OutlierSet", "convert", "format_table", "load_outlier_set", "ood_metrics",
           "ood_report", "save_histograms"]
