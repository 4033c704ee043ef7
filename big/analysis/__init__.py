"""Reviewer and organizer analysis, offline: the views CodaBench cannot give.

* :mod:`big.analysis.compare` -- ``big compare``: several scored results side by side (the thesis
  website's line and box plots per metric, with the baselines) and a per-dataset difference table;
* :mod:`big.analysis.significance` -- a paired bootstrap over the test samples of two prediction sets
  (``big compare --predictions A.zip B.zip --reference DIR``);
* :mod:`big.analysis.leaderboard` -- ``big leaderboard``: re-score a folder of submissions and rank
  them per resolution and metric, by mean score and by average rank over the 12 datasets.

Scoring itself is never re-implemented here: results come from ``details.json`` written by
:mod:`big.scoring`, or from :func:`big.scoring.build_details` run on a submission read by
:mod:`big.submission`, so every number matches what the CodaBench scoring program reports.
"""
