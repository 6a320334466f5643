"""Neural networks: the noise-prediction U-Net :math:`\\epsilon_\\theta(x_t, t)`, and a wrapper
that runs it fast for sampling (autocast, ``channels_last``, ``torch.compile``); :class:`MLPEps`, a
small ε-network for points ``[B, D]`` (the toy mixtures of chapters 5-7); :class:`CallCounter`,
a model that counts its calls (NFE); :class:`MNISTClassifier` (the FID's feature network) and
:class:`~ddpm_lib.models.classifier.NoisyClassifier` (classifier guidance)."""

from ddpm_lib.models.classifier import ClassifierConfig, MNISTClassifier
from ddpm_lib.models.inference import INFERENCE_PRECISIONS, CallCounter, InferenceModel
from ddpm_lib.models.mlp import MLPConfig, MLPEps
from ddpm_lib.models.unet import UNet, count_parameters

__all__ = [
    "INFERENCE_PRECISIONS",
    "CallCounter",
    "ClassifierConfig",
    "MNISTClassifier",
    "InferenceModel",
    "MLPConfig",
    "MLPEps",
    "UNet",
    "count_parameters",
]
