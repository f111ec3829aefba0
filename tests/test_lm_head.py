"""The LM head on answer positions only (sqlft.training.lm_head) trains exactly as the full-logits path does.

On a tiny Llama with LoRA: the loss SFTTrainer computes through the label-only head, and the LoRA gradients it gives,
equal those of transformers' own forward (logits at every position, ForCausalLMLoss), and the logs carry no
full-vocabulary metrics unless train.token_metrics asks for them.
"""

import pytest
import torch

from sqlft.config import load_config
from sqlft.training.dataset import build_training_data
from sqlft.model.loading import add_lora, load_base_model, load_tokenizer
from sqlft.training.sft import build_trainer


def trainer_for(tiny_model_dir, sql_jsonl, tmp_path, *overrides):
    config = load_config(None, [
        f"model.name={tiny_model_dir}", "model.method=lora", "model.dtype=float32", "lora.dropout=0",
        f"data.train=[{{path: {sql_jsonl}}}]", "data.template=chatml", "data.max_length=128", "data.val_fraction=0",
        f"train.output_dir={tmp_path}", "train.max_steps=2", "train.batch_size=4", "train.eval_steps=0",
        "train.gradient_checkpointing=false", "train.report_to=none", "train.precision=fp32", *overrides])
    tokenizer = load_tokenizer(config.model.name)
    data = build_training_data(config, tokenizer)
    torch.manual_seed(0)
    model = add_lora(load_base_model(config.model, for_training=True), config)
    with torch.no_grad():  # LoRA B starts at zero: give it values so that A's gradients are not zero too
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return build_trainer(config, model, tokenizer, data, tmp_path)


def loss_and_lora_grads(model, compute):
    model.zero_grad()
    loss = compute()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("packing", [False, True])
def test_label_only_head_equals_full_logits_loss_and_lora_gradients(tiny_model_dir, sql_jsonl, tmp_path, packing):
    trainer = trainer_for(tiny_model_dir, sql_jsonl, tmp_path, f"data.packing={packing}")
    model = trainer.model
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    labelled = (batch["labels"][:, 1:] != -100).float().mean().item()
    assert 0 < labelled < 0.5, "completion-only: most positions have no label"

    rows = []  # positions the head projects, per call
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: rows.append(args[0].shape[:-1]))
    label_only, label_only_grads = loss_and_lora_grads(model, lambda: trainer.compute_loss(model, dict(batch)))
    hook.remove()
    assert rows == [((batch["labels"][:, 1:] != -100).sum(),)], "the head ran on the labelled positions alone"
    # transformers' own forward: logits at every position, cross-entropy over the labelled ones
    full, full_grads = loss_and_lora_grads(model, lambda: model(**batch).loss)

    assert torch.allclose(label_only, full, rtol=1e-6, atol=1e-6), (label_only, full)
    assert label_only_grads.keys() == full_grads.keys() and len(full_grads) > 0
    for name, grad in full_grads.items():
        assert grad.abs().sum() > 0, f"{name}: a LoRA weight without gradient would prove nothing"
        assert torch.allclose(label_only_grads[name], grad, rtol=1e-4, atol=1e-7), name


def test_logs_hold_no_full_vocabulary_metrics_unless_asked(tiny_model_dir, sql_jsonl, tmp_path):
    trainer = trainer_for(tiny_model_dir, sql_jsonl, tmp_path / "a", "train.logging_steps=1")
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert logged and all("entropy" not in e and "mean_token_accuracy" not in e for e in logged)

    trainer = trainer_for(tiny_model_dir, sql_jsonl, tmp_path / "b", "train.logging_steps=1",
                          "train.token_metrics=true")
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert logged and all("entropy" in e and "mean_token_accuracy" in e for e in logged)


def lora_update_after_one_sgd_step(tiny_model_dir, sql_jsonl, tmp_path, *overrides) -> dict:
    trainer = trainer_for(tiny_model_dir, sql_jsonl, tmp_path, "train.max_steps=1", "train.optim=sgd", "train.lr=0.5",
                          "train.warmup_ratio=0", "train.scheduler=constant", "data.packing=true", *overrides)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    return {n: p.detach() - before[n] for n, p in trainer.model.named_parameters() if p.requires_grad}


def test_one_row_per_forward_with_accumulation_makes_the_same_update_as_four_rows_through_trls_head(
        tiny_model_dir, sql_jsonl, tmp_path):
    """The Spider recipe's step (1 packed row per forward x 4 accumulation steps, label-only head) against sqlft's
    step before issue 10 (4 rows in one forward, TRL's head): one optimizer step, SGD (whose update is proportional
    to the gradient, where Adam's would hide a scale error), must move the LoRA weights alike."""
    before = lora_update_after_one_sgd_step(tiny_model_dir, sql_jsonl, tmp_path / "before", "train.batch_size=4",
                                            "train.grad_accum=1", "train.token_metrics=true")
    now = lora_update_after_one_sgd_step(tiny_model_dir, sql_jsonl, tmp_path / "now", "train.batch_size=1",
                                         "train.grad_accum=4", "train.token_metrics=false")
    size = sum(u.norm() ** 2 for u in before.values()) ** 0.5
    assert size > 0
    gap = sum((now[k] - before[k]).norm() ** 2 for k in before) ** 0.5
    assert gap / size < 1e-4, f"the updates differ by {gap / size:.2%}"
