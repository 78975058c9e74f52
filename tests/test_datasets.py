"""Offline datasets: the bundled digits and the seeded generators."""

import datetime as dt
import os
import re

import numpy as np
import pytest

from oxinet.data import (
    DATE_FORMATS,
    NEGATIONS,
    SENTIMENT_LEXICON,
    SHAPE_CLASSES,
    DataLoader,
    Vocab,
    detection_collate,
    load_digits,
    make_dates,
    make_flower,
    make_moons,
    make_sentiment,
    make_shapes,
    make_spirals,
    make_words,
)
from oxinet.data import digits as digits_mod


# --- digits ---------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_content():
    x, y = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    raw, y2 = load_digits(raw=True)
    assert raw.dtype == np.uint8 and raw.max() == 16
    # checksums of the original UCI values (from sklearn's digits.csv.gz)
    assert int(raw.astype(np.int64).sum()) == 561718
    assert int((raw.astype(np.int64) * np.arange(64).reshape(8, 8)).sum()) == 17660653
    np.testing.assert_array_equal(raw[0, 0, 0], [0, 0, 5, 13, 9, 1, 0, 0])
    assert y[:10].tolist() == list(range(10))
    np.testing.assert_array_equal(x * 16, raw.astype(np.float32))
    flat, _ = load_digits(as_images=False)
    assert flat.shape == (1797, 64)
    np.testing.assert_array_equal(flat, x.reshape(1797, 64))
    x[0] = 5  # new arrays each call
    assert load_digits()[0][0].max() == 15 / 16


def test_digits_file_and_licence_are_in_the_package():
    files = os.path.dirname(digits_mod.DIGITS_PATH)
    assert os.path.isfile(digits_mod.DIGITS_PATH)
    lic = open(os.path.join(files, "LICENSE-digits.txt")).read()
    assert "Alpaydin" in lic and "Kaynak" in lic and "CC BY 4.0" in lic


# --- 2-D toy sets ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make_flower, make_moons, make_spirals])
def test_toy_sets_shapes_and_determinism(make):
    X, y = make(seed=0)
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.ndim == 2 and X.shape[1] == 2
    assert len(X) == len(y)
    X2, y2 = make(seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(seed=1)
    assert not np.array_equal(X, X3)
    counts = np.bincount(y)
    assert counts.max() - counts.min() <= 1


def test_flower_generating_process_without_noise():
    X, y = make_flower(n_samples=400, noise=0.0, shuffle=False)
    assert X.shape == (400, 2) and np.bincount(y).tolist() == [200, 200]
    t = np.linspace(0, 3.12, 200)
    r = 4 * np.sin(4 * t)
    np.testing.assert_allclose(X[:200], np.stack([r * np.sin(t), r * np.cos(t)], 1), atol=1e-5)
    assert np.abs(np.hypot(X[:, 0], X[:, 1])).max() <= 4.0 + 1e-5


def test_moons_without_noise_lie_on_half_circles():
    X, y = make_moons(n_samples=101, noise=0.0)
    a, b = X[y == 0].astype(np.float64), X[y == 1].astype(np.float64)
    assert len(a) == 50 and len(b) == 51
    np.testing.assert_allclose(np.hypot(a[:, 0], a[:, 1]), 1.0, atol=1e-6)
    assert (a[:, 1] >= -1e-6).all()
    np.testing.assert_allclose(np.hypot(b[:, 0] - 1, b[:, 1] - 0.5), 1.0, atol=1e-6)
    assert (b[:, 1] <= 0.5 + 1e-6).all()


def test_spirals_k_classes_within_unit_disc():
    X, y = make_spirals(n_samples=301, n_classes=4, noise=0.0)
    assert sorted(np.unique(y).tolist()) == [0, 1, 2, 3]
    assert np.bincount(y).tolist() == [76, 75, 75, 75]
    assert np.hypot(X[:, 0], X[:, 1]).max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="'n_classes'"):
        make_spirals(n_classes=0)
    with pytest.raises(ValueError, match="'noise'"):
        make_moons(noise=-1)


# --- shapes ---------------------------------------------------------------------------------


def test_shapes_masks_match_boxes_and_labels():
    s = make_shapes(n_images=40, image_size=32, max_objects=4, seed=0)
    assert s.images.shape == (40, 3, 32, 32) and s.images.dtype == np.float32
    assert s.images.min() >= 0.0 and s.images.max() <= 1.0
    assert s.masks.shape == (40, 32, 32) and s.masks.dtype == np.int64
    assert len(s) == 40 and s.class_names == SHAPE_CLASSES
    total = 0
    for i in range(40):
        b, l, m = s.boxes[i], s.labels[i], s.instance_masks[i]
        assert b.dtype == np.float32 and b.shape == (len(l), 4) and m.shape == (len(l), 32, 32)
        assert np.all((l >= 0) & (l < 3))
        total += len(l)
        union = np.zeros((32, 32), np.int64)
        for box, lab, mk in zip(b, l, m):
            rows, cols = np.nonzero(mk)
            assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert not (union[mk] > 0).any()  # objects do not overlap
            union[mk] = lab + 1
        np.testing.assert_array_equal(s.masks[i], union)
        # objects are bright, background dark (before noise): check mean brightness
        if len(l):
            fg = s.images[i][:, s.masks[i] > 0].mean()
            bg = s.images[i][:, s.masks[i] == 0].mean()
            assert fg > bg
    assert total >= 40
    all_labels = np.concatenate(s.labels)
    assert set(all_labels.tolist()) == {0, 1, 2}


def test_shape_geometry_classes():
    s = make_shapes(n_images=60, image_size=32, object_size=(10, 14), noise=0.0, seed=3)
    for l, m, b in zip(np.concatenate(s.labels), np.concatenate(s.instance_masks), np.concatenate(s.boxes)):
        fill = m.sum() / ((b[2] - b[0]) * (b[3] - b[1]))
        if l == 1:
            assert fill == 1.0  # a square fills its box
        elif l == 0:
            assert 0.65 < fill < 0.9  # pi/4 for a disc
        else:
            assert 0.35 < fill < 0.65  # 1/2 for a triangle


def test_shapes_determinism_padding_and_dataset_views():
    a = make_shapes(n_images=8, seed=1)
    b = make_shapes(n_images=8, seed=1)
    np.testing.assert_array_equal(a.images, b.images)
    assert all(np.array_equal(u, v) for u, v in zip(a.boxes, b.boxes))
    bx, lb = a.padded(5)
    assert bx.shape == (8, 5, 4) and lb.shape == (8, 5)
    for i in range(8):
        k = len(a.labels[i])
        np.testing.assert_array_equal(bx[i, :k], a.boxes[i])
        assert (lb[i, k:] == -1).all()
    img, target = a[0]
    assert img.shape == (3, 32, 32) and set(target) == {"boxes", "labels", "masks"}
    xb, mb = next(iter(DataLoader(a.segmentation(), batch_size=4)))
    imgs, targets = next(iter(DataLoader(a, batch_size=3, collate_fn=detection_collate)))
    assert imgs.shape == (3, 3, 32, 32) and len(targets) == 3
    np.testing.assert_array_equal(targets[1]["boxes"], a.boxes[1])
    assert xb.shape == (4, 3, 32, 32) and mb.shape == (4, 32, 32)
    with pytest.raises(ValueError, match="'object_size'"):
        make_shapes(object_size=(2, 40))


# --- dates ----------------------------------------------------------------------------------

_STRPTIME = [
    "%A, %B %d %Y", "%A, %B %d, %Y", "%m/%d/%y", "%m/%d/%Y", "%d %b %Y", "%b %d %Y",
    "%B %d, %Y", "%d %B %Y", "%d %B %y", "%d.%m.%Y", "%d.%m.%y", "%d of %B %Y",
    "%a %d %b %Y", "%A %d %B %Y", "%B %d %Y", "%Y %B %d",
]


def _parse(human):
    """Independent parser: the C library's strptime (English names in the C locale), with
    the generator's two-digit year rule (50..99 -> 19xx, 00..49 -> 20xx)."""
    s = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", human)
    for fmt in _STRPTIME:
        try:
            d = dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
        if "%y" in fmt:
            yy = d.year % 100
            d = d.replace(year=1900 + yy if yy >= 50 else 2000 + yy)
        if "%A" in fmt or "%a" in fmt:
            day_name = s.split()[0].strip(",").lower()
            assert d.strftime("%A").lower().startswith(day_name), (human, d)
        return d
    raise AssertionError(f"unparsable date {human!r}")


@pytest.mark.parametrize("lowercase", [True, False])
def test_dates_parse_back_to_iso(lowercase):
    pairs = make_dates(1500, lowercase=lowercase, seed=0)
    assert len(pairs) == 1500
    for human, iso in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso)
        assert _parse(human).isoformat() == iso, human
        assert "1950-01-01" <= iso <= "2049-12-31"
        if lowercase:
            assert human == human.lower()
    if not lowercase:
        assert any(h != h.lower() for h, _ in pairs)
    assert make_dates(20, seed=4) == make_dates(20, seed=4)
    assert make_dates(20, seed=4) != make_dates(20, seed=5)


def test_dates_use_every_format():
    pairs = make_dates(3000, seed=1)
    # a rough signature per format: slash / dot / "of" / digits-only etc.
    assert any("/" in h for h, _ in pairs) and any("." in h for h, _ in pairs)
    assert any(" of " in h for h, _ in pairs) and any("," in h for h, _ in pairs)
    assert len(DATE_FORMATS) >= 12
    d = dt.date(1987, 3, 3)
    from oxinet.data.text import _fields

    rendered = {f.format(**_fields(d)) for f in DATE_FORMATS}
    assert {"tuesday, march 3 1987", "3/3/87", "03 MAR 1987", "3rd of march 1987"} <= rendered


# --- words ----------------------------------------------------------------------------------


def test_words_distinct_lowercase_and_seeded():
    w = make_words(3000, seed=0)
    assert len(w) == 3000 and len(set(w)) == 3000
    assert all(re.fullmatch(r"[a-z]{3,}", x) for x in w)
    assert not any(re.search(r"(.)\1\1", x) for x in w)
    assert make_words(50, seed=0) == w[:50]
    assert make_words(50, seed=1) != w[:50]
    names = make_words(200, kind="name", seed=0)
    assert not any(n.endswith("saurus") for n in names)
    assert sum(x.endswith(("saurus", "raptor", "tops", "don")) for x in w) > 500
    with pytest.raises(ValueError, match="'kind'"):
        make_words(5, kind="cats")


# --- sentiment ------------------------------------------------------------------------------


def _expected_label(sentence):
    toks = sentence.replace("n't", " n't").split()
    pos = [t for t in toks if t in SENTIMENT_LEXICON["positive"]]
    neg = [t for t in toks if t in SENTIMENT_LEXICON["negative"]]
    assert bool(pos) != bool(neg), sentence  # exactly one polarity per sentence
    negated = any(t in NEGATIONS for t in toks)
    return int(bool(pos) != negated)


def test_sentiment_labels_follow_polarity_and_negation():
    s, y = make_sentiment(3000, seed=0)
    assert len(s) == 3000 and y.dtype == np.int64 and set(y.tolist()) == {0, 1}
    expected = np.array([_expected_label(t) for t in s])
    np.testing.assert_array_equal(y, expected)
    negated = np.array([any(t in NEGATIONS for t in x.replace("n't", " n't").split()) for x in s])
    assert 0.15 < negated.mean() < 0.35
    # negation flips: among negated sentences a positive word means label 0
    pos_word = np.array([any(t in SENTIMENT_LEXICON["positive"] for t in x.split()) for x in s])
    assert (y[negated & pos_word] == 0).all() and (y[negated & ~pos_word] == 1).all()
    assert (y[~negated] == pos_word[~negated]).all()
    assert 0.35 < y.mean() < 0.65
    s2, y2 = make_sentiment(3000, seed=0)
    assert s2 == s and np.array_equal(y2, y)


def test_vocab_round_trip():
    words = make_words(100, seed=0)
    v = Vocab.from_texts(words)
    ids = v.encode(words)
    assert ids.dtype == np.int64 and ids.shape == (100, max(map(len, words)))
    assert v.decode(ids) == words
    assert v.encode(["ab!"], length=5)[0].tolist()[2] == v.unk_index
    sents, _ = make_sentiment(50, seed=0)
    wv = Vocab.from_texts(sents, level="word")
    assert wv.decode(wv.encode(sents)) == sents


def test_date_ordinals():
    from oxinet.data.text import _ordinal

    got = [_ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 24, 30, 31)]
    assert got == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "24th", "30th", "31st"]
