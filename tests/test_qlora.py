"""QLoRA on CPU: 4-bit NF4 loading, the bitsandbytes AVX512-BF16 gradient fix, and the real embedded model."""

import pytest
import torch

from sqlft.config import load_config
from sqlft.model.loading import add_lora, fix_bnb_cpu_gradients, load_base_model, load_tokenizer


def lora_grad_norm(model, batch) -> float:
    model.zero_grad()
    model(**batch).loss.backward()
    return sum(p.grad.norm().item() ** 2 for n, p in model.named_parameters() if "lora_B" in n) ** 0.5


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory, embedded_model_dir):
    """Wide enough (128) for bitsandbytes' CPU repacking to kick in; 2 layers so it stays fast."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("small-llama")
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
                     ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_qlora_gradients_survive_an_eval_forward(small_model_dir, monkeypatch):
    """On CPUs with AVX512-BF16, an eval-mode forward repacks 4-bit weights and silently kills the gradients
    through frozen layers unless sqlft's fix is applied at load time. Gradients must be the same before and after."""
    import bitsandbytes as bnb

    config = load_config(None, [f"model.name={small_model_dir}", "model.method=qlora", "model.dtype=float32",
                                "lora.dropout=0", "train.gradient_checkpointing=false"])
    model = add_lora(load_base_model(config.model, for_training=True), config)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and all(not m.support_avx512bf16_for_cpu for m in layers)
    assert fix_bnb_cpu_gradients(model) == 0, "already applied by load_base_model"

    ids = torch.tensor([[1, 5, 9, 14, 20, 33, 2]])
    batch = {"input_ids": ids, "labels": ids}
    before = lora_grad_norm(model, batch)
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    model.train()
    after = lora_grad_norm(model, batch)
    assert before > 0 and after == pytest.approx(before, rel=1e-3)


@pytest.mark.slow
def test_real_embedded_model_qlora_trains_and_answers(embedded_model_dir, sql_jsonl, tmp_path):
    """The real SmolLM2-135M, 4-bit NF4 + LoRA, two steps at a short length; then the run answers a question."""
    from sqlft.model.generate import InferenceModel
    from sqlft.commands.train import train

    config = load_config("configs/smollm2-135m-lora-cpu.yaml", [
        "model.method=qlora", f"data.train=[{{path: {sql_jsonl}}}]", "data.max_length=96",
        f"train.output_dir={tmp_path / 'run'}",
        "train.max_steps=2", "train.batch_size=2", "train.eval_steps=0", "train.save_steps=2",
        "train.report_to=none"])
    run_dir = train(config)
    model = InferenceModel.load(str(run_dir))
    assert model.template == "chatml" and model.ref.kind == "run"
    answer = model.generate([model.sql_prompt("CREATE TABLE head (age INT)", "How many heads are there?")])[0]
    assert answer.new_tokens > 0 and answer.text.strip()
