"""The decoding loop of batched generation: shared prompt prefixes read once, rows dropped as soon as they finish.

Hugging Face's generate() keeps every row of a batch until the longest one is done, and reads every prompt whole.
For text-to-SQL on a CPU both dominate: a batch whose answers take 35 tokens on average and 128 at most computes
several times the tokens it keeps, and the schema (most of each prompt) is read once per question. This loop:
  1. groups consecutive rows that share most of their prompt (the system text and schema of one database: callers
     sort prompts by text), reads each group's shared prefix once and copies its keys/values to the group's rows
     (prefix caching). Groups of different prefix lengths are aligned by masked padding on the left of the cache;
  2. reads each row's own tokens, with padding between its prefix and them (positions follow the mask);
  3. decodes greedily or by sampling (temperature, top_p), and removes a row from the batch, and from the cache,
     when it writes a stop token or stop text or reaches max_new_tokens.
So one large batch over many databases costs about the tokens it keeps. Beam search and repetition penalty are
left to generate() (sqlft.generate picks).
"""

from collections.abc import Callable, Sequence

import torch


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


@torch.inference_mode()
def decode(model, rows: list[list[int]], *, pad_id: int, max_new_tokens: int, stop_ids: Sequence[int],
           prefix_cache: bool = True, stop_text: Callable[[list[int]], bool] | None = None, do_sample: bool = False,
           temperature: float = 1.0, top_p: float = 1.0,
           on_done: Callable[[int], None] | None = None) -> list[list[int]]:
    """New token ids of every row (a final stop token included). stop_text(ids) says whether a row's new tokens
    end in a stop string that is not a single token. on_done(n) is told as n rows finish (progress bars)."""
    device = model.device
    groups = prefix_groups(rows) if prefix_cache else [(0, len(rows), 0)]
    cache, prefix_mask = _prefix_cache(model, rows, groups)
    own = [row[prefix:] for start, end, prefix in groups for row in rows[start:end]]
    input_ids, own_mask = pad_after_prefix(own, 0, pad_id)  # left padding of each row's own tokens
    input_ids, mask = input_ids.to(device), torch.cat([prefix_mask, own_mask], dim=-1).to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions[:, prefix_mask.shape[1]:],
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    next_position = mask.sum(-1, keepdim=True)
    active = list(range(len(rows)))
    new: list[list[int]] = [[] for _ in rows]
    stops = set(stop_ids)
    for _ in range(max_new_tokens):
        tokens = _pick(logits.float(), do_sample, temperature, top_p)
        keep = []
        for j, (row, token) in enumerate(zip(active, tokens.tolist())):
            new[row].append(token)
            finished = (token in stops or len(new[row]) >= max_new_tokens
                        or (stop_text is not None and stop_text(new[row])))
            if not finished:
                keep.append(j)
        if on_done is not None and len(keep) < len(active):
            on_done(len(active) - len(keep))
        if not keep:
            break
        if len(keep) < len(active):  # drop finished rows: from here on they cost nothing
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_position, tokens = mask[index], next_position[index], tokens[index]
            active = [active[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=-1)
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_position,
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        next_position = next_position + 1
    return new


def _prefix_cache(model, rows: list[list[int]], groups: list[tuple[int, int, int]]):
    """(cache, mask): every group's prefix keys/values, read once and copied to each row of the group, left-padded
    to the longest prefix; mask marks that padding. Keys are stored after the rotary embedding, so padding on
    their left does not change them."""
    from transformers import DynamicCache

    width = max(prefix for _, _, prefix in groups)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    cache = DynamicCache(config=model.config)
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
