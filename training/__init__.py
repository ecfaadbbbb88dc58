"""kdviewer's training package: regenerate the teacher, the plain student and the distilled student.

Stages (``kdviewer-train STAGE`` or ``python -m training STAGE``): teacher, student, distill,
evaluate, export, all. Builds on ``kdviewer.core`` (findings registry, preprocessing, architectures,
model cards); ``kdviewer.core`` never imports this package.
"""
