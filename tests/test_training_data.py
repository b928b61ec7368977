"""The trainers' one data set-up and one outlier-options config (:mod:`oe_core.run.training_data`): the outlier
options are declared once, with the flags and ``config.json`` fields they had, and the set-up opens what each
trainer trained on before."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from classifiers_oe.config import ClassifierConfig
from density_oe.config import DensityConfig
from oe_core.cli_config import config_from_dict, config_to_dict, parse_config
from oe_core.errors import DataError
from oe_core.run import DistInfo, StepContext
from oe_core.run.training_data import OutlierOptions, open_training_data

OPTIONS = {f.name for f in dataclasses.fields(OutlierOptions)}


@pytest.mark.parametrize("cls", [ClassifierConfig, DensityConfig])
def test_both_configs_take_the_outlier_options_from_one_declaration(cls):
    assert OPTIONS == {"outliers", "outlier_sampling"}
    assert issubclass(cls, OutlierOptions) and not OPTIONS & set(cls.__dict__.get("__annotations__", {}))
    cfg = parse_config(cls, ["--outliers", "gaussian", "--outlier-sampling", "shuffle"])
    saved = config_to_dict(cfg)
    assert (saved["outliers"], saved["outlier_sampling"]) == ("gaussian", "shuffle")      # config.json's names
    assert config_from_dict(cls, saved) == cfg
    assert (parse_config(cls, []).outliers, parse_config(cls, []).outlier_sampling) == ("tinyimages80m", "block")
    assert parse_config(cls, ["--mode", "oe_tune", "--init", "x"]).uses_outliers
    assert not parse_config(cls, []).uses_outliers


CTX = dict(device=torch.device("cpu"), dist=DistInfo())
COMMON = ["--dataset", "mini-id", "--image-size", "8", "--num-workers", "0", "--outliers", "mini-outliers"]


def test_the_set_up_opens_the_stream_with_outliers_only_when_the_run_uses_them():
    cfg = parse_config(DensityConfig, COMMON + ["--mode", "oe_tune", "--init", "x", "--batch-size", "3",
                                                "--oe-batch-size", "5", "--test-batch-size", "7"])
    data = open_training_data(cfg, StepContext(cfg=cfg, **CTX), drop_last=True, test_images=9)
    (x, _), outliers = next(iter(data.stream.epoch(0, 0)))
    assert x.shape == (3, 3, 8, 8) and outliers[0].shape == (5, 3, 8, 8) and data.shape == (3, 8, 8)
    assert [len(b[0]) for b in data.test_loader] == [7, 2]
    assert len(data.train_set) % 3 and len(data.stream) == len(data.train_set) // 3      # drop_last
    assert data.stream.out_sampler.mode == "block"
    base = parse_config(DensityConfig, COMMON)
    assert open_training_data(base, StepContext(cfg=base, **CTX)).stream.out_loader is None
    cls = parse_config(ClassifierConfig, COMMON + ["--mode", "oe_scratch", "--batch-size", "3",
                                                   "--outlier-sampling", "shuffle"])
    data = open_training_data(cls, StepContext(cfg=cls, **CTX))
    assert len(data.stream) == -(-len(data.train_set) // 3) and data.stream.out_sampler.mode == "shuffle"


def test_an_extra_set_of_another_shape_is_refused_naming_it():
    cfg = parse_config(ClassifierConfig, COMMON)
    data = open_training_data(cfg, StepContext(cfg=cfg, **CTX))
    assert len(data.test_loader_of("mini-outliers", 5).dataset) == 5
    larger = dataclasses.replace(data, shape=(3, 16, 16))          # as if trained on 16x16 images
    with pytest.raises(DataError, match=r"'mini-svhn:test' have shape \(3, 8, 8\), .* of 'mini-id' \(3, 16, 16\)"):
        larger.test_loader_of("mini-svhn:test", 5)
