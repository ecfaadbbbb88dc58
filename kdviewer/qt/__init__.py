"""The desktop viewer: the only package that imports PySide6 and pyqtgraph.

Entry points live in :mod:`kdviewer.qt.app` (``run_viewer``, ``screenshot``, ``measure_startup``).
Widgets are thin: they format results that the core produces on worker threads.
"""
