"""What the node accepts: storage SOP classes and the transfer syntaxes the reader decodes."""

from __future__ import annotations

from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

#: Images the node stores and scores.
STORAGE_CLASSES: tuple[str, ...] = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

_UNCOMPRESSED = (
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1.99",  # Deflated (imageio inflates it within a cap)
    "1.2.840.10008.1.2.2",
)
_COMPRESSED = (
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
)


def _decodable(uid: str) -> bool:
    try:
        return get_decoder(UID(uid)).is_available
    except NotImplementedError:
        return False


def transfer_syntaxes() -> list[str]:
    """The transfer syntaxes accepted: each compressed one for which a pixel decoder is installed
    here (the reader decodes through pydicom's decoders), and the uncompressed ones.

    Compressed ones come first because pynetdicom accepts the first of these a peer proposes: a
    sender that offers its file's own syntax beside Explicit VR Little Endian then sends the file
    as it is, without transcoding it."""
    return [uid for uid in _COMPRESSED if _decodable(uid)] + list(_UNCOMPRESSED)
