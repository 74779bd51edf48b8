"""Built-in datasets: scikit-learn's bundled tables and generated toy problems; nothing is
downloaded.

A dataset is a function `Options -> RawData` registered under its spec name with
`@dataset(NAME)`; `generate` looks the name up in `DATASETS`. A set of several named arrays
(inputs and targets, for networks with several of each) returns a `Mapped` keyed by its own
array names instead, which `data.inputs`/`data.targets` map to the network's names. Generated
data depends only on the options (seed included), so the same spec always yields the same
samples.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dlspec.data.fit import IGNORE_INDEX, Feed, Mapped, RawData
from dlspec.errors import Problem, SpecError
from dlspec.layers.registry import Shape
from dlspec.memory import format_bytes
from dlspec.runtime.untrusted import MAX_ARRAY_BYTES


@dataclass(frozen=True)
class Options:
    """What a spec may say about generated data, with defaults already filled in."""

    num_samples: int = 1000
    noise: float | None = None  # None: the dataset's own default
    seq_len: int = 20
    seed: int = 0
    input_shape: Shape | None = None  # the network input's per-sample shape, when known
    # per-sample shapes the network wants of a set of several arrays, by array name
    array_shapes: dict[str, Shape] | None = None


DatasetFunction = Callable[[Options], RawData | Mapped]
DATASETS: dict[str, DatasetFunction] = {}


def dataset(name: str) -> Callable[[DatasetFunction], DatasetFunction]:
    """Register a dataset function under `name`; a name registered twice is an error."""

    def register(function: DatasetFunction) -> DatasetFunction:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = function
        return function

    return register


def generate(name: str, options: Options) -> RawData | Mapped:
    """The samples of built-in dataset `name`."""
    function = DATASETS.get(name)
    if function is None:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        raise SpecError(Problem(("data", "dataset"), f"unknown dataset {name!r}",
                                f"did you mean {close[0]!r}?" if close else None))
    return function(options)


def _noise(options: Options, default: float) -> float:
    return default if options.noise is None else options.noise


def _generated(name: str, options: Options, noise: float | None = None, what: str = "") -> str:
    said = f", noise {noise:g}" if noise is not None else ""
    return f"{name} (generated{' ' + what if what else ''}{said}, seed {options.seed})"


# --------------------------------------------------------------------------- scikit-learn's own


def _table(name: str, regression: bool = False) -> RawData:
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")()
    x = np.asarray(loaded.data, dtype=np.float32)  # (N, features)
    source = f"{name} (scikit-learn)"
    if regression:
        return RawData(x, np.asarray(loaded.target, dtype=np.float32), source, measured=True)
    names = [str(n) for n in loaded.target_names]
    return RawData(x, np.asarray(loaded.target, dtype=np.int64), source,
                   num_classes=len(names), labels=names)


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    return images, digits.target.astype(np.int64)


@dataset("digits")
def digits(options: Options) -> RawData:
    """1797 handwritten digits, 1×8×8 images in [0, 1]; 10 classes."""
    images, target = _digit_images()
    return RawData(images, target, "digits (scikit-learn)", num_classes=10,
                   labels=[str(d) for d in range(10)], images=True)


@dataset("digits_pair")
def digits_pair(options: Options) -> RawData:
    """Two image domains for CycleGAN: digits (inputs) and colour-inverted digits (targets).

    The inverted digits are shuffled, so pairs are not aligned: CycleGAN learns unpaired.
    """
    images, _ = _digit_images()
    rng = np.random.default_rng(options.seed)
    inverted = 1.0 - images[rng.permutation(len(images))]  # (N, 1, 8, 8)
    return RawData(images, inverted, "digits_pair (scikit-learn digits and their inverses, "
                   "unpaired)", images=True, target_images=True)


@dataset("iris")
def iris(options: Options) -> RawData:
    """150 iris flowers, 4 measurements; 3 species."""
    return _table("iris")


@dataset("wine")
def wine(options: Options) -> RawData:
    """178 wines, 13 chemical measurements; 3 cultivars."""
    return _table("wine")


@dataset("breast_cancer")
def breast_cancer(options: Options) -> RawData:
    """569 tumours, 30 features; malignant or benign."""
    return _table("breast_cancer")


@dataset("diabetes")
def diabetes(options: Options) -> RawData:
    """442 patients, 10 features; disease progression after a year (regression)."""
    return _table("diabetes", regression=True)


# --------------------------------------------------------------------------- 2-D toy problems


def _two_classes(name: str, options: Options, x: np.ndarray, y: np.ndarray,
                 noise: float | None, labels: list[str] | None = None) -> RawData:
    return RawData(x.astype(np.float32), y.astype(np.int64), _generated(name, options, noise),
                   num_classes=2, labels=labels)


@dataset("moons")
def moons(options: Options) -> RawData:
    """Two interleaving half circles (2 features); noise default 0.1."""
    from sklearn.datasets import make_moons

    noise = _noise(options, 0.1)
    x, y = make_moons(options.num_samples, noise=noise, random_state=options.seed)
    return _two_classes("moons", options, x, y, noise)


@dataset("circles")
def circles(options: Options) -> RawData:
    """A small circle inside a large one (2 features); noise default 0.05."""
    from sklearn.datasets import make_circles

    noise = _noise(options, 0.05)
    x, y = make_circles(options.num_samples, noise=noise, factor=0.5,
                        random_state=options.seed)
    return _two_classes("circles", options, x, y, noise)


@dataset("blobs")
def blobs(options: Options) -> RawData:
    """Three Gaussian clusters (2 features); noise is their std, default 1.0."""
    from sklearn.datasets import make_blobs

    noise = _noise(options, 1.0)
    x, y = make_blobs(options.num_samples, n_features=2, centers=3, cluster_std=noise,
                      random_state=options.seed)
    return RawData(x.astype(np.float32), y.astype(np.int64),
                   _generated("blobs", options, noise), num_classes=3)


_CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
_TRUTH_TABLES = {"xor": [0, 1, 1, 0], "and": [0, 0, 0, 1], "nand": [1, 1, 1, 0]}


def _truth_table(name: str, options: Options) -> RawData:
    # the 4 corners repeated in turn, so every corner appears equally often
    corner = np.arange(options.num_samples) % 4
    noise = _noise(options, 0.0)
    rng = np.random.default_rng(options.seed)
    x = _CORNERS[corner] + noise * rng.standard_normal((options.num_samples, 2))
    y = np.asarray(_TRUTH_TABLES[name])[corner]
    return _two_classes(name, options, x, y, noise, labels=["false", "true"])


@dataset("xor")
def xor(options: Options) -> RawData:
    """XOR's 4 points (2 features), repeated; not linearly separable."""
    return _truth_table("xor", options)


@dataset("and")
def and_(options: Options) -> RawData:
    """AND's 4 points (2 features), repeated; linearly separable."""
    return _truth_table("and", options)


@dataset("nand")
def nand(options: Options) -> RawData:
    """NAND's 4 points (2 features), repeated; linearly separable."""
    return _truth_table("nand", options)


@dataset("spirals")
def spirals(options: Options) -> RawData:
    """Two interleaved spirals of 1.5 turns within the unit disc; noise default 0.05."""
    rng = np.random.default_rng(options.seed)
    n = options.num_samples
    y = np.arange(n) % 2
    radius = rng.uniform(0.1, 1.0, n)
    angle = radius * 3 * math.pi + y * math.pi  # class 1 is class 0 turned half a turn
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # (N, 2)
    noise = _noise(options, 0.05)
    return _two_classes("spirals", options, x + noise * rng.standard_normal(x.shape), y, noise)


@dataset("eight_gaussians")
def eight_gaussians(options: Options) -> RawData:
    """8 Gaussians on a ring of radius 2 (2 features) for GANs; target: the mode's index.

    noise is each Gaussian's std, default 0.02 (as in the unrolled-GAN paper).
    """
    rng = np.random.default_rng(options.seed)
    mode = rng.integers(0, 8, options.num_samples)
    angle = mode * (math.pi / 4)
    centres = 2.0 * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (N, 2)
    noise = _noise(options, 0.02)
    x = centres + noise * rng.standard_normal(centres.shape)
    return RawData(x.astype(np.float32), mode.astype(np.int64),
                   _generated("eight_gaussians", options, noise), num_classes=8)


@dataset("shapes_masks")
def shapes_masks(options: Options) -> RawData:
    """Segmentation: images of one to three ellipses and rectangles on a darker, noisy
    background (C×H×W: the network's input, default 3×64×64) and their masks (H×W: 1 on a
    shape, 0 elsewhere). Colours are drawn per image and shape; noise (default 0.1) is the
    std of Gaussian pixel noise."""
    channels, height, width = (options.input_shape if options.input_shape is not None
                               and len(options.input_shape) == 3 else (3, 64, 64))
    rng = np.random.default_rng(options.seed)
    count = options.num_samples
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    rows, columns = rows / height, columns / width  # (H, W) in [0, 1)
    images = np.empty((count, channels, height, width), dtype=np.float32)
    masks = np.zeros((count, height, width), dtype=np.int64)
    for i in range(count):
        images[i] = rng.uniform(0.0, 0.45, (channels, 1, 1))  # the background's colour
        for _ in range(rng.integers(1, 4)):
            centre, radius = rng.uniform(0.2, 0.8, 2), rng.uniform(0.08, 0.25, 2)
            offset = (np.abs(rows - centre[0]) / radius[0], np.abs(columns - centre[1]) / radius[1])
            inside = (offset[0] ** 2 + offset[1] ** 2 <= 1 if rng.random() < 0.5
                      else np.maximum(*offset) <= 1)
            images[i][:, inside] = rng.uniform(0.55, 1.0, (channels, 1))
            masks[i][inside] = 1
    noise = _noise(options, 0.1)
    images = np.clip(images + noise * rng.standard_normal(images.shape, dtype=np.float32), 0, 1)
    return RawData(images, masks, _generated("shapes_masks", options, noise), num_classes=2,
                   labels=["background", "shape"], images=True)


# --------------------------------------------------------------------------- sequences

_SINE_STEPS_PER_PERIOD = 25


@dataset("sine")
def sine(options: Options) -> RawData:
    """Forecasting: seq_len noisy steps of a sine wave (seq_len, 1) → its next clean value.

    Each window starts at a random phase; 25 steps make one period; noise default 0.05. The
    target is the noise-free next value, so a perfect forecaster reaches zero error.
    """
    rng = np.random.default_rng(options.seed)
    n, length = options.num_samples, options.seq_len
    phase = rng.uniform(0.0, 2 * math.pi, (n, 1))
    steps = np.arange(length + 1) * (2 * math.pi / _SINE_STEPS_PER_PERIOD)
    clean = np.sin(phase + steps)  # (N, seq_len + 1)
    noise = _noise(options, 0.05)
    window = clean[:, :length] + noise * rng.standard_normal((n, length))
    return RawData(window[:, :, None].astype(np.float32),
                   clean[:, length:].astype(np.float32), _generated("sine", options, noise),
                   measured=True)


@dataset("sequence_sum")
def sequence_sum(options: Options) -> RawData:
    """The adding problem: (seq_len, 2) of values in [0, 1] and 0/1 markers → the sum of the
    two marked values (regression).

    When the network reads one feature per step, (seq_len, 1), the markers are left out and
    the target is the sum of all values. noise (default 0) is added to the target.
    """
    rng = np.random.default_rng(options.seed)
    n, length = options.num_samples, options.seq_len
    values = rng.uniform(0.0, 1.0, (n, length))
    plain = options.input_shape is not None and options.input_shape[-1:] == (1,)
    if plain:
        x, y = values[:, :, None], values.sum(axis=1)
    else:
        if length < 2:
            raise SpecError(Problem(("data", "seq_len"), "the adding problem needs seq_len ≥ 2"))
        marked = np.argsort(rng.random((n, length)), axis=1)[:, :2]  # two distinct steps
        markers = np.zeros((n, length))
        np.put_along_axis(markers, marked, 1.0, axis=1)
        x, y = np.stack([values, markers], axis=2), (values * markers).sum(axis=1)
    noise = _noise(options, 0.0)
    y = y + noise * rng.standard_normal(n)
    what = "sum of all values" if plain else "adding problem"
    return RawData(x.astype(np.float32), y[:, None].astype(np.float32),
                   _generated("sequence_sum", options, noise, what), measured=True)


TOKEN_VOCABULARY = 1000  # ids 0..999; 0 is padding
_POSITIVE_WORDS = range(1, 21)  # ids 1..20 count for "positive", 21..40 for "negative"
_NEGATIVE_WORDS = range(21, 41)


@dataset("token_sentiment")
def token_sentiment(options: Options) -> RawData:
    """Token-id sequences (seq_len,) int64 → negative or positive, a toy sentiment task.

    Ids 1–20 are "positive" words, 21–40 "negative" ones, 41–999 neutral filler, and 0 is
    padding: each text is between seq_len/2 and seq_len tokens long, padded with 0 at the end.
    Between 0 and 4 positive and 0 and 4 negative words (fewer in texts under 16 tokens) are
    planted at random places, never as many of each; the label says which kind occurs more
    often. noise (default 0) is the share of labels flipped at random.
    """
    rng = np.random.default_rng(options.seed)
    count, length = options.num_samples, options.seq_len
    if length < 2:
        raise SpecError(Problem(("data", "seq_len"), "token_sentiment needs seq_len of at "
                                f"least 2; found {length}"))
    tokens = rng.integers(41, TOKEN_VOCABULARY, (count, length))
    lengths = rng.integers(max(2, length // 2), length + 1, count)
    most = min(4, max(2, length // 2) // 2)  # planted words of each kind always fit
    positive = rng.integers(0, most + 1, count)
    negative = (positive + rng.integers(1, most + 1, count)) % (most + 1)  # never equal
    for i in range(count):
        places = rng.permutation(lengths[i])[:positive[i] + negative[i]]
        tokens[i, places[:positive[i]]] = rng.choice(_POSITIVE_WORDS, positive[i])
        tokens[i, places[positive[i]:]] = rng.choice(_NEGATIVE_WORDS, negative[i])
        tokens[i, lengths[i]:] = 0
    label = (positive > negative).astype(np.int64)
    noise = _noise(options, 0.0)
    flipped = rng.random(count) < noise
    label = np.where(flipped, 1 - label, label)
    return RawData(tokens.astype(np.int64), label,
                   _generated("token_sentiment", options, noise), num_classes=2,
                   labels=["negative", "positive"])


@dataset("parity")
def parity(options: Options) -> RawData:
    """Binary sequences (seq_len, 1) → even or odd number of ones; noise (default 0) is
    Gaussian noise added to the bits."""
    rng = np.random.default_rng(options.seed)
    bits = rng.integers(0, 2, (options.num_samples, options.seq_len))
    noise = _noise(options, 0.0)
    x = bits[:, :, None] + noise * rng.standard_normal((*bits.shape, 1))  # (N, seq_len, 1)
    return RawData(x.astype(np.float32), (bits.sum(axis=1) % 2).astype(np.int64),
                   _generated("parity", options, noise), num_classes=2, labels=["even", "odd"])



# --------------------------------------------------------------------------- tagging

TAGS = ["DET", "ADJ", "NOUN", "VERB", "ADV", "PREP"]
# words by tag; light, fast, run, watch, play and fly have two tags: only context tells
_TAGGED_WORDS = {
    "DET": ["the", "a", "every", "some", "this", "that"],
    "ADJ": ["big", "small", "red", "old", "happy", "quiet", "green", "light", "fast"],
    "NOUN": ["dog", "cat", "bird", "house", "park", "river", "man", "woman", "child", "ball",
             "garden", "light", "run", "watch", "play", "fly"],
    "VERB": ["sees", "likes", "chases", "finds", "visits", "run", "watch", "play", "fly"],
    "ADV": ["quickly", "slowly", "often", "today", "well", "fast"],
    "PREP": ["in", "near", "under", "with", "by", "behind"],
}
TAGGING_WORDS = sorted({word for words in _TAGGED_WORDS.values() for word in words})
TAGGING_VOCABULARY = len(TAGGING_WORDS) + 1  # ids 1.. are the words; 0 is padding
_WORD_IDS = {word: i + 1 for i, word in enumerate(TAGGING_WORDS)}
_SHORTEST_SENTENCE = 3  # DET NOUN VERB


def _noun_phrase(rng: np.random.Generator, nested: bool) -> list[str]:
    """DET ADJ* NOUN, sometimes followed by PREP and another noun phrase."""
    tags = ["DET", *["ADJ"] * int(rng.choice([0, 0, 0, 1, 1, 2])), "NOUN"]
    if not nested and rng.random() < 0.25:
        tags += ["PREP", *_noun_phrase(rng, True)]
    return tags


def _sentence_tags(rng: np.random.Generator) -> list[str]:
    """NP VERB [NP] [ADV]: a sentence of the grammar, as its tags."""
    tags = [*_noun_phrase(rng, False), "VERB"]
    if rng.random() < 0.6:
        tags += _noun_phrase(rng, False)
    if rng.random() < 0.35:
        tags.append("ADV")
    return tags


@dataset("tagging")
def tagging(options: Options) -> RawData:
    """Token classification: sentences of a tiny grammar as word ids (seq_len,) int64 → the
    part of speech of each word, (seq_len,) int64 (DET, ADJ, NOUN, VERB, ADV, PREP).

    A sentence is NP VERB [NP] [ADV], a noun phrase DET ADJ* NOUN [PREP NP]. Of the 46 words
    (ids 1–46; TAGGING_WORDS in id order) six have two parts of speech — light, fast, run,
    watch, play, fly — so a word alone tags about 93% of words right and context the rest.
    Sentences are 3 to seq_len words, padded at the end with id 0, whose tag is -100
    (IGNORE_INDEX: no class; cross-entropy skips it). noise (default 0) is the share of words
    replaced by a random word, their tags kept.
    """
    length = options.seq_len
    if length < _SHORTEST_SENTENCE:
        raise SpecError(Problem(("data", "seq_len"), f"tagging needs seq_len of at least "
                                f"{_SHORTEST_SENTENCE} (DET NOUN VERB); found {length}"))
    rng = np.random.default_rng(options.seed)
    count = options.num_samples
    tokens = np.zeros((count, length), dtype=np.int64)
    tags = np.full((count, length), IGNORE_INDEX, dtype=np.int64)
    for i in range(count):
        sentence = next((t for t in (_sentence_tags(rng) for _ in range(50))
                         if len(t) <= length), ["DET", "NOUN", "VERB"])
        words = [_TAGGED_WORDS[t][rng.integers(len(_TAGGED_WORDS[t]))] for t in sentence]
        tokens[i, :len(words)] = [_WORD_IDS[w] for w in words]
        tags[i, :len(words)] = [TAGS.index(t) for t in sentence]
    noise = _noise(options, 0.0)
    replaced = (rng.random(tokens.shape) < noise) & (tokens > 0)
    tokens[replaced] = rng.integers(1, TAGGING_VOCABULARY, int(replaced.sum()))
    return RawData(tokens, tags, _generated("tagging", options, noise), num_classes=len(TAGS),
                   labels=list(TAGS))


# --------------------------------------------------------------------------- several inputs

LISTING_COLOURS = {"red": (0.9, 0.15, 0.15), "green": (0.15, 0.8, 0.2),
                   "blue": (0.2, 0.3, 0.95), "yellow": (0.95, 0.9, 0.15),
                   "magenta": (0.85, 0.2, 0.9)}
LISTING_FEATURES = 12
_COLOUR_WEIGHT = 2.5  # how far a colour leads the tabular features in choosing the category


@dataset("listings")
def listings(options: Options) -> Mapped:
    """Several inputs and outputs: a listing's photo (`image`, 3×H×W in [0, 1]; the network's
    size, default 3×64×64) and 12 tabular `features` → its `category` (5 classes) and `price`.

    Each photo shows one disc or square in one of 5 colours on a dark, noisy background. The
    category is the colour's unless a feature outbids it — argmax(2.5 · onehot(colour) +
    features[0:5]) — which happens for about one listing in seven, so both inputs count. The
    price is 2 + 0.6·f5 − 0.4·f6 + 0.3·f7 + 0.5·category, plus noise; features 8–11 are
    distractors. noise (default 0.05) is the std of the pixel noise and of the price's noise.
    """
    shape = (options.array_shapes or {}).get("image")
    height, width = shape[1:] if shape is not None and len(shape) == 3 else (64, 64)
    count = options.num_samples
    needed = count * 3 * height * width * 4  # the float32 photos
    if needed > MAX_ARRAY_BYTES:
        raise SpecError(Problem(("data", "num_samples"), f"{count:,} listings of "
                                f"3×{height}×{width} photos need {format_bytes(needed)} of "
                                f"memory, more than the {format_bytes(MAX_ARRAY_BYTES)} dlspec "
                                "allows itself", "generate fewer samples"))
    rng = np.random.default_rng(options.seed)
    noise = _noise(options, 0.05)
    colour = rng.integers(0, len(LISTING_COLOURS), count)
    features = rng.standard_normal((count, LISTING_FEATURES)).astype(np.float32)  # (N, 12)
    scores = _COLOUR_WEIGHT * np.eye(len(LISTING_COLOURS))[colour] + features[:, :5]
    category = np.argmax(scores, axis=1)
    price = (2.0 + 0.6 * features[:, 5] - 0.4 * features[:, 6] + 0.3 * features[:, 7]
             + 0.5 * category + noise * rng.standard_normal(count))
    images = _photos(rng, colour, height, width, noise)
    source = _generated("listings", options, noise)
    here = ("data", "dataset")
    none = np.empty((count, 0), dtype=np.float32)
    return Mapped(
        feeds={"image": Feed(images, here, images=True), "features": Feed(features, here)},
        targets={"category": RawData(none, category.astype(np.int64), source,
                                     num_classes=len(LISTING_COLOURS),
                                     labels=list(LISTING_COLOURS)),
                 "price": RawData(none, price.astype(np.float32), source, measured=True)},
        target_where={"category": here, "price": here}, source=source)


def _photos(rng: np.random.Generator, colour: np.ndarray, height: int, width: int,
            noise: float) -> np.ndarray:
    """One disc or square a photo, of the colour given, (N, 3, H, W) in [0, 1]."""
    count = len(colour)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    rows, columns = rows / height, columns / width  # (H, W) in [0, 1)
    palette = np.array(list(LISTING_COLOURS.values()), dtype=np.float32)  # (5, 3)
    tint = np.clip(palette[colour] + rng.uniform(-0.08, 0.08, (count, 3)), 0, 1)
    background = rng.uniform(0.0, 0.35, (count, 3)).astype(np.float32)
    centre, radius = rng.uniform(0.3, 0.7, (count, 2)), rng.uniform(0.15, 0.28, count)
    square = rng.random(count) < 0.5
    images = np.empty((count, 3, height, width), dtype=np.float32)
    for i in range(count):
        dy, dx = np.abs(rows - centre[i, 0]), np.abs(columns - centre[i, 1])
        inside = (np.maximum(dy, dx) <= 0.85 * radius[i] if square[i]
                  else dy ** 2 + dx ** 2 <= radius[i] ** 2)
        images[i] = background[i][:, None, None]
        images[i][:, inside] = tint[i][:, None]
    images += noise * rng.standard_normal(images.shape, dtype=np.float32)
    return np.clip(images, 0.0, 1.0, out=images)
