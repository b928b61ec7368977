"""PixelCNN++ (Salimans et al. 2017): the network, its layers, weight norm and the DMOL likelihood."""
from .model import PixelCNNConfig, PixelCNNpp
from .weight_norm import data_dependent_init, frozen_weights

__all__ = ["PixelCNNConfig", "PixelCNNpp", "data_dependent_init", "frozen_weights"]
