"""The desktop viewer: the only package that imports PySide6 and pyqtgraph.

Entry points: :mod:`kdviewer.qt.app` (``run_viewer``) and :mod:`kdviewer.qt.offscreen` (``screenshot``,
``measure_startup``).
Widgets are thin: they format results that the core produces on worker threads.
"""
