"""A DICOM node: receive images (C-STORE SCP), score them on arrival, send results back as DICOM
(Comprehensive SR and Secondary Capture), and query/retrieve from a PACS.

Qt-free, like :mod:`kdviewer.core`; built on pynetdicom and highdicom. Research use only.
"""

#: The node's defaults (the registered DICOM port, and the AE title peers address it by).
DEFAULT_PORT = 11112
DEFAULT_AE_TITLE = "KDVIEWER"
#: Seconds a silent peer keeps an association: a stalled peer cannot hold a slot, or a query, for ever.
NETWORK_TIMEOUT_S = 30
