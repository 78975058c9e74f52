"""``oxinet.models``: the course's vision model zoo, a Keras-style ``summary`` and transfer
learning helpers.

Every model maps NCHW images to logits (segmentation models to per-pixel scores) and takes
``num_classes``, ``in_channels`` and, where the architecture depends on it, ``input_size``.
Parameter counts at the original input sizes match the papers / torchvision (see each
module's docstring).
"""

from oxinet.models.lenet import LeNet5, lenet5
from oxinet.models.alexnet import AlexNet, alexnet
from oxinet.models.vgg import VGG, vgg16, vgg19
from oxinet.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnet101, resnet152
from oxinet.models.inception import GoogLeNet, GoogLeNetOutputs, Inception, InceptionAux, googlenet
from oxinet.models.mobilenet import (
    DepthwiseSeparable, InvertedResidual, MobileNetV1, MobileNetV2, mobilenet_v1, mobilenet_v2,
)
from oxinet.models.xception import MiniXception, SeparableConv2d, XceptionBlock
from oxinet.models.segmentation import FCN, UNet, fcn, unet
from oxinet.models.summary import ModelSummary, count_parameters, summary
from oxinet.models.transfer import (
    find_head, fine_tune, freeze, replace_head, set_batchnorm_eval, trainable_parameters, unfreeze,
)

__all__ = [
    "LeNet5", "lenet5", "AlexNet", "alexnet", "VGG", "vgg16", "vgg19",
    "BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "GoogLeNet", "GoogLeNetOutputs", "Inception", "InceptionAux", "googlenet",
    "DepthwiseSeparable", "InvertedResidual", "MobileNetV1", "MobileNetV2", "mobilenet_v1", "mobilenet_v2",
    "MiniXception", "SeparableConv2d", "XceptionBlock", "FCN", "UNet", "fcn", "unet",
    "ModelSummary", "summary", "count_parameters",
    "freeze", "unfreeze", "trainable_parameters", "find_head", "replace_head", "set_batchnorm_eval", "fine_tune",
]
