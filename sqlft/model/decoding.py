"""The decoding loop of batched generation: shared prompt prefixes read once, rows dropped as soon as they finish.

Hugging Face's generate() keeps every row of a batch until the longest one is done, and reads every prompt whole.
For text-to-SQL on a CPU both dominate: a batch whose answers take 35 tokens on average and 128 at most computes
several times the tokens it keeps, and the schema (most of each prompt) is read once per question. This loop:
  1. groups consecutive rows that share most of their prompt (the system text and schema of one database: callers
     sort prompts by text), reads each group's shared prefix once and copies its keys/values to the group's rows
     (prefix caching). Groups of different prefix lengths are aligned by masked padding on the left of the cache;
  2. reads each row's own tokens, with padding between its prefix and them (positions follow the mask);
  3. decodes greedily or by sampling (temperature, top_p), and removes a row from the batch, and from the cache,
     when it writes a stop token or stop text or reaches max_new_tokens;
  4. keeps keys/values in buffers with room for the new tokens (transformers' DynamicCache concatenates, copying the
     whole cache at every token: 57% of a decoding step of 64 rows over 600 cached tokens, profiled on a 2-core
     CPU), and drops finished rows in bulk, once a quarter of the batch is done, since dropping copies the cache too.
So one large batch over many databases costs about the tokens it keeps. Beam search and repetition penalty are
left to generate() (sqlft.model.generate picks).
"""

import functools
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

# Finished rows are dropped once 1/DROP_WHEN_DONE of the batch is finished: a finished row kept costs one token of
# compute per step, a drop copies every row's cache.
DROP_WHEN_DONE = 4


def shared_prefix_length(rows: list[list[int]]) -> int:
    """Number of leading token ids that all rows have in common."""
    first, length = rows[0], min(len(row) for row in rows)
    for row in rows[1:]:
        length = next((i for i in range(length) if row[i] != first[i]), length)
    return length


def pad_after_prefix(rows: list[list[int]], prefix: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with padding between the shared prefix and each row's own tokens, so that the
    last token of every row is at the same place (as left padding gives) and the prefix stays aligned with its
    cached keys/values. Positions follow the mask, so a row's tokens are numbered as if unpadded."""
    width = max(len(row) for row in rows) - prefix
    input_ids, mask = [], []
    for row in rows:
        pad = width - (len(row) - prefix)
        input_ids.append(row[:prefix] + [pad_id] * pad + row[prefix:])
        mask.append([1] * prefix + [0] * pad + [1] * (len(row) - prefix))
    return torch.tensor(input_ids), torch.tensor(mask)


def prefix_groups(rows: list[list[int]], min_share: float = 0.5) -> list[tuple[int, int, int]]:
    """(first row, end row, shared prefix length) of runs of consecutive rows that share at least min_share of the
    first row's tokens; a row's own prefix keeps at least its last token out, to be read for the first logits."""
    groups, start = [], 0
    while start < len(rows):
        end, shared = start + 1, len(rows[start]) - 1
        while end < len(rows):
            common = min(shared, shared_prefix_length([rows[start], rows[end]]), len(rows[end]) - 1)
            if common < min_share * len(rows[start]):
                break
            shared, end = common, end + 1
        groups.append((start, end, max(shared, 0)))
        start = end
    return groups


def _grouped_query_attention_on_cpu(function):
    @functools.wraps(function)
    def wrapper(model, *args, **kwargs):
        with _grouped_query_attention_in_sdpa(model.device):
            return function(model, *args, **kwargs)
    return wrapper


@torch.inference_mode()
@_grouped_query_attention_on_cpu
def decode(model, rows: list[list[int]], *, pad_id: int, max_new_tokens: int, stop_ids: Sequence[int],
           prefix_cache: bool = True, stop_text: Callable[[list[int]], bool] | None = None, do_sample: bool = False,
           temperature: float = 1.0, top_p: float = 1.0,
           on_done: Callable[[int], None] | None = None) -> list[list[int]]:
    """New token ids of every row (a final stop token included). stop_text(ids) says whether a row's new tokens
    end in a stop string that is not a single token. on_done(n) is told as n rows finish (progress bars)."""
    device = model.device
    groups = prefix_groups(rows) if prefix_cache else [(0, len(rows), 0)]
    own = [row[prefix:] for start, end, prefix in groups for row in rows[start:end]]
    input_ids, own_mask = pad_after_prefix(own, 0, pad_id)  # left padding of each row's own tokens
    cache, prefix_mask = _prefix_cache(model, rows, groups, room=input_ids.shape[1] + max_new_tokens)
    input_ids, mask = input_ids.to(device), torch.cat([prefix_mask, own_mask], dim=-1).to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions[:, prefix_mask.shape[1]:],
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    next_position = mask.sum(-1, keepdim=True)
    active = list(range(len(rows)))  # the row of each batch position
    live = [True] * len(rows)  # per batch position: False once the row is finished (until it is dropped)
    new: list[list[int]] = [[] for _ in rows]
    stops = set(stop_ids)
    for _ in range(max_new_tokens):
        tokens = _pick(logits.float(), do_sample, temperature, top_p)
        done_now = 0
        for j, (row, token) in enumerate(zip(active, tokens.tolist())):
            if not live[j]:
                continue
            new[row].append(token)
            if (token in stops or len(new[row]) >= max_new_tokens
                    or (stop_text is not None and stop_text(new[row]))):
                live[j], done_now = False, done_now + 1
        if on_done is not None and done_now:
            on_done(done_now)
        kept = [j for j, alive in enumerate(live) if alive]
        if not kept:
            break
        if len(active) - len(kept) >= max(1, len(active) // DROP_WHEN_DONE):
            index = torch.tensor(kept, device=device)
            cache.batch_select_indices(index)
            mask, next_position, tokens = mask[index], next_position[index], tokens[index]
            active, live = [active[j] for j in kept], [True] * len(kept)
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=-1)
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position,
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        next_position = next_position + 1
    return new


class RoomyLayer(DynamicLayer):
    """A DynamicLayer that writes new keys/values into spare room at the end of its buffers instead of
    concatenating (which copies the whole cache at every token); it doubles its room when full."""

    def __init__(self, room: int):
        super().__init__()
        self.room, self.length = room, 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._keys = key_states.new_empty(*key_states.shape[:2], 0, key_states.shape[3])
            self._values = value_states.new_empty(*value_states.shape[:2], 0, value_states.shape[3])
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            capacity = max(end + self.room, 2 * self._keys.shape[-2])
            self._keys, self._values = (_with_capacity(t, self.length, capacity) for t in (self._keys, self._values))
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self.keys, self.values = self._keys[:, :, :self.length], self._values[:, :, :self.length]


def _with_capacity(tensor: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
    out = tensor.new_empty(*tensor.shape[:2], capacity, tensor.shape[3])
    out[:, :, :length] = tensor[:, :, :length]
    return out


def new_cache(config, room: int) -> Cache:
    """A cache of RoomyLayers for a model whose layers all attend to the full context (Llama, Qwen2...);
    transformers' DynamicCache for any other (sliding-window layers keep their own rules)."""
    text_config = config.get_text_config(decoder=True)
    kinds = getattr(text_config, "layer_types", None) or ["full_attention"] * text_config.num_hidden_layers
    if any(kind != "full_attention" for kind in kinds):
        return DynamicCache(config=config)
    return Cache(layers=[RoomyLayer(room) for _ in kinds])


def _prefix_cache(model, rows: list[list[int]], groups: list[tuple[int, int, int]], room: int):
    """(cache, mask): every group's prefix keys/values, read once and copied to each row of the group, left-padded
    to the longest prefix; mask marks that padding; the cache has room for `room` more tokens. Keys are stored
    after the rotary embedding, so padding on their left does not change them."""
    width = max(prefix for _, _, prefix in groups)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    cache = new_cache(model.config, room)
    if width == 0:
        return cache, mask
    layers = model.config.num_hidden_layers
    keys: list[list] = [[] for _ in range(layers)]
    values: list[list] = [[] for _ in range(layers)]
    for start, end, prefix in groups:
        mask[start:end, width - prefix:] = 1
        own = DynamicCache(config=model.config)
        if prefix:
            model(input_ids=torch.tensor([rows[start][:prefix]], device=model.device), past_key_values=own,
                  use_cache=True, logits_to_keep=1)
        for i in range(layers):
            keys[i].append((own.layers[i].keys if prefix else None, end - start))
            values[i].append((own.layers[i].values if prefix else None, end - start))
    for i in range(layers):
        cache.update(_left_padded(keys[i], width), _left_padded(values[i], width), i)
    return cache, mask


def _left_padded(parts: list[tuple[torch.Tensor | None, int]], width: int) -> torch.Tensor:
    """[rows, heads, width, dim] from each group's [1, heads, prefix, dim] (None: no prefix) and row count."""
    like = next(t for t, _ in parts if t is not None)
    out = []
    for tensor, count in parts:
        padded = like.new_zeros(1, like.shape[1], width, like.shape[3])
        if tensor is not None:
            padded[:, :, width - tensor.shape[2]:] = tensor
        out.append(padded.expand(count, -1, -1, -1))
    return torch.cat(out, dim=0)


@contextmanager
def _grouped_query_attention_in_sdpa(device: torch.device):
    """On a CPU, let torch's SDPA share each key/value head among its query heads (enable_gqa) when a mask is
    given. transformers copies keys/values once per query head instead (repeat_kv) for multi-token reads with a
    mask, which it needs on CUDA (a masked GQA falls back to the slow math kernel there); on a CPU that copy of
    every row's cache was 11% of a 64-row batch (profiled) and the answers are the same. Its own switch is this
    environment variable, read at each call."""
    name = "TRANSFORMERS_SDPA_FORCE_GQA"
    before = os.environ.get(name)
    if device.type == "cpu":
        os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float) -> torch.Tensor:
    if not do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # the smallest set reaching top_p is kept
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1).squeeze(-1)
