"""Qt-free core of kdviewer: image reading, preprocessing, models, inference, telemetry.

Nothing under this package may import Qt (checked by a test).
"""
