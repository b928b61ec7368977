"""Datasets, transforms and samplers of the OE study suite: ``get_dataset`` / ``open_dataset`` build any registered
dataset (the contract of its items: :mod:`oe_core.data.registry`); ``python -m oe_core.data`` lists them.  Importing
this package registers its own datasets; dataset plugins (:mod:`oe_core.data.plugins`) are imported on the first
unknown name and when the datasets are listed.
"""
from . import folders, noise, tinyimages, torchvision_sets  # noqa: F401  (registration)
from .arrays import UInt8ImageArray
from .registry import (DATASETS, DatasetEntry, dataset_info, get_dataset, list_datasets, open_dataset,
                       register_dataset)
from .samplers import InBatchSampler, OutlierBatchSampler
from .transforms import CIFAR_MEAN, CIFAR_STD, normalize, random_crop_flip, to_uint8_tensor, to_unit_range

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "DATASETS", "DatasetEntry", "InBatchSampler", "OutlierBatchSampler",
           "UInt8ImageArray", "dataset_info", "get_dataset", "list_datasets", "normalize", "open_dataset",
           "random_crop_flip", "register_dataset", "to_uint8_tensor", "to_unit_range"]
