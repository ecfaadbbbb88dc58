"""A DICOM node: receive images (C-STORE SCP), score them on arrival, send results back as DICOM
(Comprehensive SR and Secondary Capture), and query/retrieve from a PACS.

Qt-free, like :mod:`kdviewer.core`; built on pynetdicom and highdicom. Research use only.
"""
