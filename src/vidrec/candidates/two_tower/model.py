"""The two-tower retriever: a user tower and a video tower whose normalised outputs meet in a
dot product, so retrieving O(hundreds) candidates from O(millions) is one inner-product search.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from vidrec.candidates.two_tower.config import TwoTowerConfig
from vidrec.candidates.two_tower.data import Vocabulary
from vidrec.candidates.two_tower.inputs import N_AGE, N_DOW, N_DURATION, N_HOUR, USER_INPUTS
from vidrec.features.titles import TITLE_DIM


def _or(x: torch.Tensor | None, default: torch.Tensor) -> torch.Tensor:
    return default if x is None else x


def masked_mean(emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """emb (B, H, d), mask (B, H) bool -> (B, d) mean of the filled slots (zeros if none)."""
    m = mask.unsqueeze(-1).float()  # (B, H, 1)
    return (emb * m).sum(1) / m.sum(1).clamp(min=1.0)


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class HistoryPooling(nn.Module):
    """Pools a right-aligned history (B, H, d) into (B, d) by the configured rule.

    "mean": masked mean. "weighted": a learned logit per recency position, softmax over the
    filled slots (starts as the mean). "attention": a learned query scores each video plus
    its recency-position embedding, softmax over the filled slots. "transformer": the same
    attention over the outputs of one causal pre-norm self-attention layer (SASRec-style, each
    slot reads the videos before it), so the order of the history, not only its recency, counts.
    """

    def __init__(self, mode: str, width: int, d: int) -> None:
        super().__init__()
        self.mode = mode
        if mode == "weighted":
            self.position_logit = nn.Parameter(torch.zeros(width))
        if mode in ("attention", "transformer"):
            self.position = nn.Parameter(torch.randn(width, d) * 0.05)
            self.key = nn.Linear(d, d)
            self.query = nn.Parameter(torch.randn(d) * 0.05)
        if mode == "transformer":
            heads = 2 if d % 2 == 0 else 1
            layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.0, batch_first=True,
                                               norm_first=True)  # fmt: skip
            self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
            self.register_buffer("causal", torch.ones(width, width, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """emb (B, H, d), mask (B, H) bool -> (B, d); all-empty rows give zeros."""
        if self.mode == "mean":
            return masked_mean(emb, mask)
        width = emb.shape[1]
        if self.mode == "weighted":
            scores = self.position_logit[-width:].expand(emb.shape[0], -1)  # (B, H)
        else:
            x = emb + self.position[-width:]  # (B, H, d)
            if self.mode == "transformer":
                # padded slots (left of a right-aligned history) enter as zero vectors rather than masked
                # keys: a slot that could read only padding would attend to nothing (NaN in the fast path)
                x = self.encoder(x * mask.unsqueeze(-1), mask=self.causal[-width:, -width:])
            scores = torch.tanh(self.key(x)) @ self.query / emb.shape[-1] ** 0.5  # (B, H)
            emb = x
        weights = torch.softmax(scores.masked_fill(~mask, -1e9), dim=1) * mask  # (B, H)
        return torch.einsum("bh,bhd->bd", weights, emb)


class TwoTowerModel(nn.Module):
    """User tower: hashed user id, pooled completed history (+ pooled recent dislikes,
    demographics, request context, example age, as configured) -> MLP -> L2 norm.
    Video tower: id + category + mean of tags + creator (+ duration bucket, language, a
    learned projection of the frozen title embedding) -> MLP -> L2 norm.

    Row 0 of every table is "unknown/padding" and stays zero, so cold videos are
    embedded from their content and cold users from their history alone.
    """

    def __init__(self, config: TwoTowerConfig, vocab: Vocabulary, max_tags: int = 16) -> None:
        super().__init__()
        self.config, self.vocab = config, vocab
        c, d = config, config.embedding_dim
        n = len(vocab.videos) + 1
        self.user_hash = nn.Embedding(c.user_hash_buckets, d)
        self.history = nn.Embedding(n, d, padding_idx=0)
        self.pooling = HistoryPooling(c.history_pooling, c.history_len, d)
        self.video_id = nn.Embedding(n, d, padding_idx=0)
        self.category = nn.Embedding(len(vocab.categories) + 1, d, padding_idx=0)
        self.tags = nn.EmbeddingBag(len(vocab.tags) + 1, d, mode="mean", padding_idx=0)
        self.creator = nn.Embedding(len(vocab.creators) + 1, d, padding_idx=0)
        tables = [self.user_hash, self.history, self.video_id, self.category, self.creator]
        zero_rows = [self.history, self.video_id, self.category, self.tags, self.creator]
        user_parts, video_parts = 2, 4
        if c.user_demographics:
            self.demographics = nn.ModuleList(
                nn.Embedding(len(v) + 1, d, padding_idx=0) for v in vocab.user_fields.values()
            )
            tables += list(self.demographics)
            user_parts += 1
        if c.dislike_len:
            user_parts += 1  # dislikes pooled from the history table (mean)
        if c.request_context:  # only the tables in use exist (DDP requires every parameter used)
            self.hour = nn.Embedding(N_HOUR, d, padding_idx=0)
            self.dow = nn.Embedding(N_DOW, d, padding_idx=0)
            tables += [self.hour, self.dow]
        if c.example_age:
            self.age = nn.Embedding(N_AGE, d, padding_idx=0)
            tables.append(self.age)
        if c.request_context or c.example_age:
            user_parts += 1  # one context vector: hour + day of week + example age
        if c.video_duration:
            self.duration = nn.Embedding(N_DURATION, d, padding_idx=0)
            tables.append(self.duration)
            video_parts += 1
        if c.video_language:
            self.language = nn.Embedding(len(vocab.languages) + 1, d, padding_idx=0)
            tables.append(self.language)
            video_parts += 1
        if c.video_titles:
            self.title = nn.Linear(TITLE_DIM, d, bias=False)  # frozen sentence vector -> tower input
            video_parts += 1
        self.user_mlp = _mlp(user_parts * d, c.user_hidden, d, c.dropout)
        self.video_mlp = _mlp(video_parts * d, c.video_hidden, d, c.dropout)
        for table in tables:
            nn.init.normal_(table.weight, std=0.05)
        nn.init.normal_(self.tags.weight, std=0.05)
        with torch.no_grad():
            for table in zero_rows + tables[5:]:
                table.weight[0].zero_()
        # Per-video features of the catalogue, gathered by index during training.
        for name in ("video_category", "video_creator", "video_duration", "video_language"):
            self.register_buffer(name, torch.zeros(n, dtype=torch.long))
        self.register_buffer("video_tags", torch.zeros(n, max_tags, dtype=torch.long))
        if c.video_titles:  # computed once per known video at fit, saved with the model
            self.register_buffer("video_title", torch.zeros(n, TITLE_DIM))

    def set_catalogue(self, features: dict[str, torch.Tensor]) -> None:
        """Store each known video's content features (from ``Vocabulary.encode_videos``,
        plus ``title`` (n, TITLE_DIM) when the model reads titles)."""
        known = features["video"] > 0
        idx = features["video"][known]
        names = ("category", "creator", "duration", "language") + (("title",) if self.config.video_titles else ())
        for name in names:
            if name in features:
                getattr(self, f"video_{name}")[idx] = features[name][known]
        self.video_tags[idx] = features["tags"][known][:, : self.video_tags.shape[1]]

    def user_tower(
        self,
        user_buckets: torch.Tensor,
        history: torch.Tensor,
        dislikes: torch.Tensor | None = None,
        demographics: torch.Tensor | None = None,
        hour: torch.Tensor | None = None,
        dow: torch.Tensor | None = None,
        example_age: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, n_hash), (B, H) [, (B, D), (B, F), (B,), (B,), (B,)] -> (B, d) unit vectors.

        Optional inputs the config enables default to "unknown" (index 0) when not given;
        a missing ``example_age`` means age zero, the serving value.
        """
        c = self.config
        u = self.user_hash(user_buckets).sum(dim=1)  # (B, d)
        if self.training and c.user_id_dropout > 0:
            u = u * (torch.rand(u.shape[0], 1) >= c.user_id_dropout)  # (B, d)
        parts = [u, self.pooling(self.history(history), history > 0)]
        zero = torch.zeros_like(user_buckets[:, 0])  # (B,) "unknown" (sizes from the inputs, so a traced
        if c.dislike_len:  # tower serves any batch size)
            dis = dislikes if dislikes is not None else zero[:, None]
            parts.append(masked_mean(self.history(dis), dis > 0))
        if c.user_demographics:
            demo = torch.zeros_like(u)
            if demographics is not None:
                for j, table in enumerate(self.demographics):
                    demo = demo + table(demographics[:, j])
            parts.append(demo)
        if c.request_context or c.example_age:
            ctx = torch.zeros_like(u)
            if c.request_context:
                ctx = ctx + self.hour(_or(hour, zero)) + self.dow(_or(dow, zero))
            if c.example_age:
                ctx = ctx + self.age(_or(example_age, zero + 1))
            parts.append(ctx)
        return F.normalize(self.user_mlp(torch.cat(parts, dim=-1)), dim=-1)

    def embed_users(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The user tower on a batch dict (``Examples.user_batch`` / ``iterate_batches`` rows)."""
        keys = ("user_buckets", "history", *USER_INPUTS)
        return self.user_tower(**{k: batch[k] for k in keys if k in batch})

    def video_tower(
        self,
        video: torch.Tensor,
        category: torch.Tensor,
        tags: torch.Tensor,
        creator: torch.Tensor,
        duration: torch.Tensor | None = None,
        language: torch.Tensor | None = None,
        title: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,), (B,), (B, T), (B,) [, (B,), (B,), (B, TITLE_DIM) float] -> (B, d) unit vectors.

        A missing ``title`` (or a zero row: no title) contributes nothing.
        """
        c = self.config
        vid = self.video_id(video)  # (B, d)
        if self.training and c.video_id_dropout > 0:
            vid = vid * (torch.rand(vid.shape[0], 1) >= c.video_id_dropout)
        parts = [vid, self.category(category), self.tags(tags), self.creator(creator)]
        zero = torch.zeros_like(video)
        if c.video_duration:
            parts.append(self.duration(_or(duration, zero)))
        if c.video_language:
            parts.append(self.language(_or(language, zero)))
        if c.video_titles:
            parts.append(self.title(_or(title, torch.zeros(video.shape[0], TITLE_DIM))))  # (B, d)
        return F.normalize(self.video_mlp(torch.cat(parts, dim=-1)), dim=-1)  # (B, d)

    def catalogue_tower(self, video: torch.Tensor) -> torch.Tensor:
        """Video-tower output for known videos by shifted index (features from the catalogue)."""
        return self.video_tower(
            video, self.video_category[video], self.video_tags[video], self.video_creator[video],
            self.video_duration[video], self.video_language[video],
            self.video_title[video] if self.config.video_titles else None,
        )

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits (B, 1 + n_neg): column 0 the positive, the rest the sampled negatives.

        The video tower runs once per distinct video in the batch.
        """
        u = self.embed_users(batch)  # (B, d)
        videos = torch.cat([batch["video"].unsqueeze(1), batch["negatives"]], dim=1)  # (B, 1+n)
        uniq, inverse = torch.unique(videos, return_inverse=True)
        v = self.catalogue_tower(uniq)[inverse]  # (B, 1+n, d)
        return torch.einsum("bd,bnd->bn", u, v) / self.config.temperature

    def save(self, directory: str | Path) -> Path:
        """Write ``model.pt`` (state dict), ``config.json`` and the vocabularies into ``directory``."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), root / "model.pt")
        self.config.save(root / "config.json")
        self.vocab.save(root)
        return root

    @classmethod
    def load(cls, directory: str | Path) -> TwoTowerModel:
        """Rebuild a model written by :meth:`save`."""
        root = Path(directory)
        if not (root / "model.pt").exists():
            raise FileNotFoundError(f"{root}: no two-tower model (model.pt) found there")
        state = torch.load(root / "model.pt", map_location="cpu", weights_only=True)
        saved = json.loads((root / "config.json").read_text())
        saved.setdefault("history_pooling", "mean")  # models saved before pooling modes used the mean
        for name in ("video_duration", "video_language"):  # models saved before these features
            state.setdefault(name, torch.zeros_like(state["video_category"]))
        model = cls(
            TwoTowerConfig.from_dict(saved),
            Vocabulary.load(root),
            max_tags=state["video_tags"].shape[1],
        )
        model.load_state_dict(state)
        model.eval()
        return model
