"""Rendering: everything that turns the analysis result tree into text, HTML, data files and plots.

``format`` (the one number formatter), ``labels`` (study labels from registry rows), ``words``
(the sentences each flag and method code stands for), ``view`` (result tree -> template view
model), ``html`` (jinja2 pages), ``data`` (JSON and CSV). Nothing here computes a statistic.
"""
