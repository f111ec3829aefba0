"""Attention for shared-schema rows that computes only what the block mask allows (model.attn_implementation
`auto` with data.packing=shared_prefix; sqlft.training.shared_prefix builds the rows).

A shared-schema row is [prefix][block 1][block 2]...[padding]. Under the 4D block mask, SDPA still computes every
query against every key of the row and throws most of it away: a 1536-token row with a 450-token schema and ~20
blocks of ~50 tokens computes 1536 x 1536 scores where the allowed ones are ~450^2/2 (the prefix, causally) plus
~20 x 50 x (450 + 50) (each block against the prefix and itself): about a quarter. Here each row is cut into
those pieces, and each piece is one SDPA call with exactly its keys:

- the prefix attends to itself causally (SDPA's causal kernel, no mask);
- the blocks, padded to the longest, are one batch of queries whose keys are the prefix followed by the block
  itself: mask [prefix: all, block: causal]; the padded tail of a short block is computed and dropped.

Each piece goes through transformers' own sdpa_attention_forward (GQA, scaling and dropout as the model sets them),
so a token sees the same keys, in the same order of positions, as under the block mask: the logits, the loss and the
gradients are those of `sdpa` with the block mask (tests/test_shared_prefix.py runs both against the records
alone). Padding positions get zeros: no loss is on them and no real token attends to them.

The rows' layout reaches every layer as the `attention_mask` itself: block ids as an integer tensor [batch, 1, 1,
length], which transformers passes on as given (a 4D mask) and gradient checkpointing re-runs with. A forward
without block ids (generation, an ordinary batch) gets the ordinary sdpa mask and attention.
"""

import torch

NAME = "sqlft_shared_prefix"


def register() -> str:
    """Make NAME an attention implementation transformers can load a model with (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # forwards without block ids: the ordinary causal mask
    return NAME


def layout_mask(block_ids: torch.Tensor) -> torch.Tensor:
    """What the decoder's hook passes as attention_mask: the block ids, 4D so that transformers passes it on."""
    return block_ids[:, None, None, :]


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """query [batch, heads, length, dim], key and value [batch, kv heads, length, dim] -> ([batch, length, heads,
    dim], None), as transformers' attention functions."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is None or attention_mask.dtype.is_floating_point or attention_mask.dtype == torch.bool:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    rows = [row_attention(module, query[r:r + 1], key[r:r + 1], value[r:r + 1], attention_mask[r, 0, 0].tolist(),
                          dropout, scaling, sdpa_attention_forward)
            for r in range(query.shape[0])]
    return torch.stack(rows), None


def row_attention(module, query, key, value, block_ids: list[int], dropout, scaling, sdpa) -> torch.Tensor:
    """One row's attention output [length, heads, dim] (inputs with a batch of 1)."""
    length = query.shape[2]
    prefix = next((i for i, b in enumerate(block_ids) if b != 0), length)
    starts, ends = block_spans(block_ids, prefix)
    pieces = []
    if prefix:
        out, _ = sdpa(module, query[:, :, :prefix], key[:, :, :prefix], value[:, :, :prefix], None,
                      dropout=dropout, scaling=scaling, is_causal=True)
        pieces.append(out[0])
    if starts:
        longest = max(e - s for s, e in zip(starts, ends))
        steps = torch.arange(longest)
        # Token positions of each block, a short block's tail repeating its last token (computed, then dropped)
        index = torch.minimum(torch.tensor(starts)[:, None] + steps, torch.tensor(ends)[:, None] - 1)
        index = index.to(query.device)

        def blocks_of(states):  # [1, heads, length, dim] -> [blocks, heads, longest, dim]
            return states[0][:, index].transpose(0, 1)

        def with_prefix(states):  # keys and values: the prefix, then the block itself
            own = blocks_of(states)
            shared = states[:, :, :prefix].expand(len(starts), -1, -1, -1)
            return torch.cat([shared, own], dim=2)

        allowed = torch.cat([torch.ones(longest, prefix, dtype=torch.bool),
                             torch.ones(longest, longest, dtype=torch.bool).tril()], dim=1).to(query.device)
        out, _ = sdpa(module, blocks_of(query), with_prefix(key), with_prefix(value), allowed[None, None],
                      dropout=dropout, scaling=scaling, is_causal=False)
        kept = torch.cat([b * longest + torch.arange(e - s) for b, (s, e) in enumerate(zip(starts, ends))])
        pieces.append(out.flatten(0, 1).index_select(0, kept.to(query.device)))
    padding = length - (ends[-1] if ends else prefix)
    if padding:
        pieces.append(query.new_zeros(padding, query.shape[1], query.shape[3]))
    return torch.cat(pieces)


def block_spans(block_ids: list[int], prefix: int) -> tuple[list[int], list[int]]:
    """(starts, ends) of the blocks after the prefix, in order; padding (negative ids) ends them. A row is the prefix,
    then blocks, each contiguous, then padding (sqlft.training.shared_prefix.make_row and Collator)."""
    starts, ends, end = [], [], prefix
    for i in range(prefix, len(block_ids)):
        if block_ids[i] < 0:
            break
        if i == prefix or block_ids[i] != block_ids[i - 1]:
            if starts:
                ends.append(i)
            starts.append(i)
        end = i + 1
    if starts:
        ends.append(end)
    return starts, ends
