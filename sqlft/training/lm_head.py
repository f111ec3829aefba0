"""The language-model head on the answer positions only, for completion-only training.

With completion-only loss the labels of every prompt position (system text, schema, question: ~90% of a Spider row)
are -100, yet TRL 1.16's SFTTrainer scores every position: its fused head (trl.trainer.utils.add_fused_lm_head)
projects all of them through the 49,152-wide vocabulary in tiles (it keeps only the labelled ones on Triton GPUs
alone), and computes entropy and top-1 accuracy over the full vocabulary for its logs. On a CPU that is most of the
memory and a large share of the time. `use_label_only_head` makes the call TRL's compute_loss makes,
`model(..., fused_lm_head=True)`, run the head on the labelled positions alone and skip those two metrics;
`train.token_metrics: true` keeps TRL's head and its metrics.
"""

import functools
from collections import defaultdict

import torch
import torch.nn.functional as F

IGNORE = -100  # label of positions without loss (prompt, padding)
TOKEN_METRICS = ("entropy", "mean_token_accuracy")  # TRL's full-vocabulary metrics, logged per step
# Config keys of heads that scale or softcap the logits (Gemma, Granite, ...): TRL's head applies them, a plain
# matmul would not.
SCALED_HEAD = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def use_label_only_head(trainer) -> bool:
    """Patch a built SFTTrainer: the head on labelled positions only, no entropy / token accuracy in the logs.
    Returns False (TRL's head kept) for models whose head does more than a matmul (softcapping, logit scaling, MoE
    router losses), which only TRL's head reproduces."""
    model = trainer.model
    model = model.get_base_model() if hasattr(model, "get_base_model") else model  # under PEFT: the causal LM
    code = getattr(getattr(model.forward, "__func__", None), "__code__", None)
    if code is None or "fused_lm_head" not in code.co_varnames:
        raise RuntimeError("TRL's fused LM head (model(..., fused_lm_head=True)) is missing: sqlft.training.lm_head needs "
                           "the trl version pinned in pyproject.toml")
    text_config = model.config.get_text_config()
    if any(getattr(text_config, key, None) for key in (*SCALED_HEAD, "output_router_logits")):
        return False
    model.forward = _label_only_forward(model, model.forward)
    # compute_loss appends entropy and accuracy (zeros here) to trainer._metrics[mode][key]: hand it a throwaway
    # list for those keys so that they never reach the logs (a zero would read as a real measurement).
    trainer._metrics = {mode: _WithoutTokenMetrics(list, values) for mode, values in trainer._metrics.items()}
    return True


class _WithoutTokenMetrics(defaultdict):
    def __missing__(self, key):
        if key in TOKEN_METRICS:
            return []  # not stored: appends to it are dropped
        return super().__missing__(key)


def _label_only_forward(model, fused_forward):
    """`fused_forward`: the forward TRL installed (kept for every other call: generation, fused_lm_head=False)."""
    from trl.trainer.utils import FusedCausalLMOutput

    @functools.wraps(fused_forward)
    def forward(*args, fused_lm_head: bool = False, labels=None, shift_labels=None, num_items_in_batch=None,
                **kwargs):
        if not fused_lm_head or labels is None or shift_labels is not None or \
                (labels[:, 1:] != IGNORE).float().mean() > 0.5:
            # Not the training loss, context parallelism's pre-shifted labels, or a loss on most positions (TRL's
            # tiled head then holds less memory than these logits would): TRL's forward, unchanged.
            extra = {k: v for k, v in (("labels", labels), ("shift_labels", shift_labels),
                                       ("num_items_in_batch", num_items_in_batch)) if v is not None}
            return fused_forward(*args, fused_lm_head=fused_lm_head, **kwargs, **extra)
        kwargs["use_cache"] = False
        hidden = model.base_model(*args, **kwargs).last_hidden_state  # [batch, seq, hidden]: the backbone
        targets = labels[:, 1:]  # position t predicts token t + 1
        mask = targets != IGNORE  # [batch, seq - 1]
        # [n_labelled, hidden] -> [n_labelled, vocab]: a few hundred rows instead of batch x seq. Under autocast the
        # matmul runs in bf16 and the loss in fp32, as transformers' own ForCausalLMLoss does.
        # The head may be held in another dtype than the backbone output (seen: a bf16 head after added special
        # tokens resized it, under fp32 training without autocast): cast to the head, as TRL's head does.
        head = model.get_output_embeddings()
        logits = head(hidden[:, :-1][mask].to(head.weight.dtype)).float()
        token_log_probs = -F.cross_entropy(logits, targets[mask], reduction="none")
        # Back to [batch, seq - 1], zero where there is no label (what TRL's head returns); masked_scatter keeps a
        # batch without labels connected to the graph (a differentiable zero).
        log_probs = token_log_probs.new_zeros(mask.shape).masked_scatter(mask, token_log_probs)
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        zeros = torch.zeros_like(log_probs)
        return FusedCausalLMOutput(loss=-log_probs.sum() / count, log_probs=log_probs, entropy=zeros,
                                   is_top1=zeros.bool(), label_mask=mask)

    return forward
