"""Datasets, transforms and samplers of the OE study suite.

``get_dataset(name, split=None, root=None, transform=None, download=False, **kwargs)``
builds any registered dataset; every dataset yields ``(image, target)`` with a
``torch.uint8`` (3, H, W) image (or ``transform(PIL RGB image)``) and the class
index (labelled sets) or ``-1`` (OOD / outlier sets).  ``python -m oe_core.data``
lists the datasets, where their files go and where to get them.

Importing this package registers its own datasets (the modules below register on
import).  Packages that add datasets (dataset plugins: :mod:`oe_core.data.plugins`) are
imported the first time a name is not found and when the datasets are listed.
"""
from . import folders, noise, tinyimages, torchvision_sets, toy_shapes  # noqa: F401  (registration)
from .arrays import UInt8ImageArray
from .registry import (DATASETS, DatasetEntry, dataset_info, get_dataset, list_datasets, open_dataset,
                       register_dataset)
from .samplers import InBatchSampler, OutlierBatchSampler
from .transforms import CIFAR_MEAN, CIFAR_STD, normalize, random_crop_flip, to_uint8_tensor, to_unit_range

__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "DATASETS", "DatasetEntry", "InBatchSampler", "OutlierBatchSampler",
    "UInt8ImageArray", "dataset_info", "get_dataset", "list_datasets", "normalize", "open_dataset",
    "random_crop_flip", "register_dataset", "to_uint8_tensor", "to_unit_range",
]
