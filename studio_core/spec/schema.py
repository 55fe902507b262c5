"""The one declarative description of a training run: data, features, model, training.

Plain dataclasses with defaults and no logic in constructors, so the UI can edit them, the CLI
can read them from JSON, and a run directory can store them.  ``Spec.from_dict`` is strict: an
unknown key or a value of the wrong type is reported with its dotted path (all of them at
once), never silently dropped.  Checks that need the data live in ``studio_core.features.validate``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from studio_core.common.errors import Problem, SpecError

SPEC_VERSION = 1
TASKS = ("binary", "regression", "multiclass")
CLASS_WEIGHTS = ("none", "balanced")
NUMERIC_TRANSFORMS = ("standardize", "piecewise", "periodic", "quantile", "bucketize")
BINNINGS = ("quantile", "tree")
SCALED_TRANSFORMS = ("standardize", "piecewise", "periodic", "quantile")  # a column that enters the deep part as numbers
CATEGORICAL_ENCODINGS = ("vocab", "hash")
CROSS_ENCODINGS = ("hash", "vocab")
TEXT_KINDS = ("text", "multi")
DEEP_OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd")
WIDE_OPTIMIZERS = ("adagrad", "sparse_adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
MONITORS = ("auto", "auc", "logloss", "accuracy", "rmse", "mae", "r2", "macro_f1", "macro_auc", "loss")
OUT_OF_CORE = ("auto", "always", "never")
SPLITS = ("random", "time", "group", "column")


@dataclass
class DataSpec:
    """Where the training rows come from and what to predict."""

    table: str = ""  # a table of the workspace; ignored when ``sql`` is set
    sql: str = ""  # optional SELECT producing the training rows
    sources: dict[str, str] = field(default_factory=dict)  # table name -> file, for the CLI
    label: str = ""
    task: str = "binary"  # "binary", "regression" or "multiclass" (3 to max_classes label values)
    positive_class: str = ""  # binary only: the label value (as text) that counts as 1
    max_classes: int = 100  # multiclass: a label with more values is refused (group rare classes with SQL first)
    split: str = "random"  # "random" (stratified for classification), "time", "group" or "column" (see split.py)
    split_column: str = ""  # time: the column ordering the rows; group: the group column; column: names each row's part
    validation_fraction: float = 0.15  # rows that make every decision (early stopping, crosses, INT8, ...)
    test_fraction: float = 0.15  # rows scored once after training, for the reported figures
    max_test_rows: int = 200_000  # huge tables: the test part holds at most this many rows (0: no cap)
    split_seed: int = 42


@dataclass
class NumericFeature:
    """A numeric column and how it enters the deep part (see ``transform``)."""

    name: str = ""
    # "standardize": (x - mean) / std; "piecewise": piecewise-linear encoding over quantile bins;
    # "periodic": standardised, then learned periodic embeddings (sin/cos of trained frequencies);
    # "quantile": the training CDF as one number in [-1, 1] (robust to skew and outliers);
    # "bucketize": only its quantile bucket, embedded
    transform: str = "standardize"
    buckets: int = 10  # quantile buckets (bucketize, embed, crosses, wide ids); piecewise/quantile: bins (up to twice as many)
    embed: bool = False  # standardize: also embed the bucket id in the deep part (thresholds, tails)
    wide: bool = False  # also feed the bucket id to the wide (linear) part
    embedding_dim: int = 0  # size of the bucket embedding; 0 = the rule round(1.6 * n^0.56)
    # piecewise: where the bins lie -- "quantile" (equal shares of the training rows) or "tree"
    # (target-aware: where a shallow regression tree on the training labels splits, at most ``buckets``)
    binning: str = "quantile"


@dataclass
class CategoricalFeature:
    """A categorical column: an id per value (vocabulary or hashing), embedded in the deep part."""

    name: str = ""
    encoding: str = "vocab"  # "vocab" or "hash"
    min_count: int = 1  # vocab: values seen fewer times share the unseen id 0
    hash_buckets: int = 1000  # hash: number of buckets
    embedding_dim: int = 8
    deep: bool = True  # embed in the deep part
    wide: bool = True  # also a one-hot weight per value in the wide part


@dataclass
class TextFeature:
    """A column holding many tokens per row: free text (a bag of words) or a set of values in
    one cell (``Action|Comedy``, or a DuckDB LIST column).  Each kept token is a weight in the
    wide part -- a bag-of-words linear model -- and an embedding averaged into one vector in the
    deep part.  Tokens are found in SQL (``data.sqlutil.tokens_expr``)."""

    name: str = ""
    kind: str = "text"  # "text": lower-cased words of letters and digits; "multi": the values between delimiters, as written
    delimiter: str = "|"  # multi: what separates the values of a text cell (a LIST column needs none)
    ngrams: int = 1  # text: 1 = words; 2 = words and adjacent word pairs ("not good")
    encoding: str = "vocab"  # "vocab": the most frequent tokens get ids; "hash": 1 + murmur3(token) mod hash_buckets
    min_count: int = 2  # vocab: tokens found in fewer training rows are dropped (as unseen ones are)
    max_tokens: int = 20_000  # vocab: at most this many tokens, the most frequent
    hash_buckets: int = 65_536  # hash: number of buckets
    max_length: int = 64  # distinct tokens kept per row, the first ones
    embedding_dim: int = 16  # deep: the width of the averaged token embedding
    deep_min_count: int = 200  # deep: only tokens found in at least this many training rows get an embedding (rarer ones: wide only)
    deep: bool = True  # average the tokens' embeddings into the deep part
    wide: bool = True  # a weight per token in the wide part


@dataclass
class CrossFeature:
    """A wide cross of 2-3 feature columns (numerics enter as their quantile bucket)."""

    columns: list[str] = field(default_factory=list)
    encoding: str = "hash"  # "hash" or "vocab"
    hash_buckets: int = 10000
    min_count: int = 1  # vocab: combinations seen fewer times share id 0


@dataclass
class FeatureSpec:
    numeric: list[NumericFeature] = field(default_factory=list)
    categorical: list[CategoricalFeature] = field(default_factory=list)
    crosses: list[CrossFeature] = field(default_factory=list)
    text: list[TextFeature] = field(default_factory=list)  # free text and multi-valued columns (after numeric and categorical)
    max_vocabulary: int = 100_000  # a vocab column with more kept values is hashed into this many buckets instead


@dataclass
class ModelSpec:
    """Architecture: a sparse linear wide part plus embeddings -> [attention] -> MLP."""

    wide: bool = True
    deep: bool = True
    hidden_units: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    batch_norm: bool = False
    attention: bool = False  # AutoInt-style self-attention over field embeddings
    attention_dim: int = 16
    attention_heads: int = 2
    attention_layers: int = 1
    wide_l1: float = 0.0  # L1 strength on wide weights (proximal step)
    wide_l2: float = 0.0  # L2 strength on wide weights (the wide optimiser's weight decay): suggested for free text, whose many rare tokens a linear model memorises
    periodic_frequencies: int = 16  # periodic numerics: trained frequencies per column
    periodic_dim: int = 16  # periodic numerics: the embedding each column becomes
    periodic_scale: float = 0.1  # periodic numerics: std of the initial frequencies (small: smooth functions first)
    token_dropout: float = 0.0  # text / multi columns: each token of a training row is dropped with this probability (0.3 cost 0.013 test AUC on the reviews table)
    ensemble: int = 1  # k > 1: k BatchEnsemble members in one MLP (TabM-mini), trained on their mean loss, predicting their mean


CPU_BATCH_SIZE = 512  # what train.batch_size = 0 (automatic) means on a CPU


@dataclass
class TrainSpec:
    epochs: int = 40  # at most: early stopping on the validation rows (patience 3) usually ends training sooner
    batch_size: int = 0  # rows per step; 0 = automatic: 512 on a CPU, more on a GPU for a large table (runs.train.batch_size_for)
    deep_optimizer: str = "adam"
    deep_lr: float = 0.002
    weight_decay: float = 0.0
    wide_optimizer: str = "adagrad"
    wide_lr: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0  # max gradient norm of the deep part; 0 disables
    positive_weight: float = 1.0  # binary: a positive row's weight in the loss (rare positives: negatives per positive); 1 keeps scores calibrated
    class_weight: str = "none"  # multiclass: "balanced" weighs each class in the loss as if all classes had the same rows (binary: positive_weight)
    early_stopping_patience: int = 3  # epochs without improvement before stopping; 0 disables
    max_minutes: float = 0.0  # wall-clock budget of training: the epoch under way when it runs out is the last; 0 = none
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    monitor: str = "auto"  # "auto": auc (binary), rmse (regression) or logloss (multiclass)
    seed: int = 42
    device: str = "auto"
    mixed_precision: bool = True  # used on CUDA only
    out_of_core: str = "auto"  # "auto", "always" or "never": stream encoded blocks from disk instead of holding rows in memory
    out_of_core_rows: int = 2_000_000  # "auto" streams when the training data has more rows than this


@dataclass
class Spec:
    version: int = SPEC_VERSION
    data: DataSpec = field(default_factory=DataSpec)
    features: FeatureSpec = field(default_factory=FeatureSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Spec:
        """Build a spec from parsed JSON, reporting every unknown key and wrong type."""
        problems: list[Problem] = []
        spec = _build(cls, data, "spec", problems)
        if problems:
            raise SpecError(problems)
        return spec

    @classmethod
    def from_json(cls, text: str | bytes) -> Spec:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError([Problem("spec", f"not valid JSON ({exc})", "upload a spec saved by the studio or `wdstudio suggest`")]) from None
        return cls.from_dict(data)

    def feature_names(self) -> list[str]:
        f = self.features
        return [x.name for x in f.numeric] + [x.name for x in f.categorical] + [x.name for x in f.text]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _build(tp: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    """Convert parsed JSON ``value`` to type ``tp``; append a Problem for anything off."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected an object, got {type(value).__name__}", "see the spec format in the README"))
            return tp()
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        for key in value:
            if key not in names:
                problems.append(Problem(f"{path}.{key}", "unknown field", f"remove it; known fields: {', '.join(sorted(names))}"))
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{path}.{f.name}", problems)
        return tp(**kwargs)
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            problems.append(Problem(path, f"expected a list, got {type(value).__name__}", "write it as a JSON array"))
            return []
        return [_build(item, v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            problems.append(Problem(path, "expected an object of text values", 'write it as {"name": "path"}'))
            return {}
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        problems.append(Problem(path, f"expected {_type_name(tp)}, got {json.dumps(value)[:60]}", f"give a {_type_name(tp)} value"))
        return tp()
    return float(value) if tp is float else value
