"""The shapes teacher's word tokenizer and its small transformer text encoder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from uni3d.errors import UserError

PAD, BOS = "<pad>", "<bos>"


class VocabularyError(UserError, ValueError):
    """A prompt uses a word the tokenizer does not know."""


class WordTokenizer:
    """Whitespace tokenizer over a closed vocabulary; every sequence starts with ``<bos>``."""

    def __init__(self, words: list[str], max_length: int):
        self.words = [PAD, BOS] + [w for w in words if w not in (PAD, BOS)]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_length = max_length

    @property
    def vocabulary(self) -> list[str]:
        """The words a prompt may use."""
        return self.words[2:]

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        """(B, max_length) token ids. Raises VocabularyError naming the vocabulary."""
        rows = []
        for prompt in prompts:
            words = prompt.strip().lower().split()
            unknown = [w for w in words if w not in self.index or w in (PAD, BOS)]
            if unknown:
                raise VocabularyError(
                    f"word(s) {', '.join(map(repr, unknown))} in prompt {prompt!r} are not in the shapes "
                    f"teacher's vocabulary: {' '.join(self.vocabulary)}"
                )
            if len(words) + 1 > self.max_length:
                raise VocabularyError(f"prompt {prompt!r} is longer than {self.max_length - 1} words")
            ids = [self.index[BOS]] + [self.index[w] for w in words]
            rows.append(ids + [self.index[PAD]] * (self.max_length - len(ids)))
        return torch.tensor(rows, dtype=torch.long)

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        data = {"words": self.vocabulary, "max_length": self.max_length}
        (Path(directory) / "vocab.json").write_text(json.dumps(data, indent=2) + "\n")

    @staticmethod
    def load(directory: str | Path) -> WordTokenizer:
        data = json.loads((Path(directory) / "vocab.json").read_text())
        return WordTokenizer(data["words"], data["max_length"])


@dataclass
class TextEncoderConfig:
    """Shape of the shapes teacher's text encoder."""

    vocab_size: int = 20
    max_length: int = 6
    width: int = 128
    layers: int = 2
    heads: int = 4


class ShapesTextEncoder(nn.Module):
    """Token + position embeddings and a small pre-norm transformer: (B, L) ids -> (B, L, width)."""

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        self.config = config
        self.token = nn.Embedding(config.vocab_size, config.width)
        self.position = nn.Parameter(torch.zeros(config.max_length, config.width))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, 2 * config.width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token(ids) + self.position[: ids.shape[1]]
        return self.norm(self.transformer(x))

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))

    @staticmethod
    def from_pretrained(directory: str | Path) -> ShapesTextEncoder:
        directory = Path(directory)
        config = TextEncoderConfig(**json.loads((directory / "config.json").read_text()))
        model = ShapesTextEncoder(config)
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model.eval()
