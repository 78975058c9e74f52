"""Data for training: loaders and mini-batches, splits, preprocessing, augmentation, and
datasets that work offline (the bundled 8x8 digits and seeded generated sets).

Randomness (shuffling, splits, augmentation) follows one rule, see ``oxinet.data._rng``:
``seed=None`` uses oxinet's shared generator (``oxinet.manual_seed``), an int gives the
object its own repeatable generator.
"""

from oxinet.data.loader import (
    ArrayDataset,
    DataLoader,
    Subset,
    default_collate,
    detection_collate,
    random_split,
)
from oxinet.data.splits import split_indices, train_dev_test_split, train_test_split
from oxinet.data.preprocessing import Standardizer, one_hot
from oxinet.data.layout import from_column_layout, to_column_layout
from oxinet.data import transforms
from oxinet.data.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    Pad,
    RandomBrightness,
    RandomColorShift,
    RandomContrast,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)
from oxinet.data.digits import load_digits
from oxinet.data.toy import make_flower, make_moons, make_spirals
from oxinet.data.shapes import SHAPE_CLASSES, Shapes, make_shapes
from oxinet.data.text import (
    DATE_FORMATS,
    NEGATIONS,
    SENTIMENT_LEXICON,
    Vocab,
    make_dates,
    make_sentiment,
    make_words,
)

__all__ = [
    "ArrayDataset", "DataLoader", "Subset", "default_collate", "detection_collate", "random_split",
    "split_indices", "train_dev_test_split", "train_test_split",
    "Standardizer", "one_hot", "to_column_layout", "from_column_layout",
    "transforms", "Compose", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomCrop",
    "RandomRotation", "ColorJitter", "RandomBrightness", "RandomContrast", "RandomColorShift",
    "RandomErasing", "Normalize", "Resize", "Pad",
    "load_digits", "make_flower", "make_moons", "make_spirals",
    "SHAPE_CLASSES", "Shapes", "make_shapes",
    "DATE_FORMATS", "NEGATIONS", "SENTIMENT_LEXICON", "Vocab", "make_dates", "make_sentiment",
    "make_words",
]
