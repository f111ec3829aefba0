"""Generation with the real embedded model: prefix caching must not change a single greedy answer."""


import pytest
import torch

from sqlft.config import GenerationConfig
from sqlft.model.decoding import RoomyLayer, new_cache, pad_after_prefix, prefix_groups, shared_prefix_length
from sqlft.model.generate import InferenceModel, cut_at_stop

SCHEMA = ("CREATE TABLE singer (singer_id INT, name TEXT, country TEXT, age INT, PRIMARY KEY (singer_id));\n"
          "CREATE TABLE concert (concert_id INT, singer_id INT, year INT, "
          "FOREIGN KEY (singer_id) REFERENCES singer(singer_id));")
QUESTIONS = ["How many singers are there?",
             "List the names of singers from France ordered by age, oldest first.",
             "In which year were the most concerts held?"]


def test_shared_prefix_and_padding_keep_every_row_whole():
    rows = [[5, 6, 7, 8], [5, 6, 9], [5, 6, 7, 1, 2, 3]]
    assert shared_prefix_length(rows) == 2
    ids, mask = pad_after_prefix(rows, 2, pad_id=0)
    assert ids.tolist() == [[5, 6, 0, 0, 7, 8], [5, 6, 0, 0, 0, 9], [5, 6, 7, 1, 2, 3]]
    assert mask.tolist() == [[1, 1, 0, 0, 1, 1], [1, 1, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1]]
    # what the model reads per row, padding dropped, is the row itself
    assert [r[m.bool()].tolist() for r, m in zip(ids, mask)] == rows


def test_prefix_groups_are_runs_of_rows_that_share_most_of_their_prompt():
    a, b = [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 9, 9, 9, 9, 9, 9]
    rows = [a + [10], a + [11, 12], b + [13], b + [14], [1, 2, 3]]
    assert prefix_groups(rows) == [(0, 2, 8), (2, 4, 8), (4, 5, 2)]  # a lone row keeps its last token to read
    assert prefix_groups([a, a]) == [(0, 2, 7)]


@pytest.fixture(scope="module")
def model(embedded_model_dir):
    torch.set_num_threads(2)
    return InferenceModel.load(str(embedded_model_dir), template="chatml")


@pytest.mark.slow  # the real 135M model
@pytest.mark.parametrize("schema_format", ["ddl", "compact"])
def test_decoding_loop_gives_the_answers_of_transformers_generate(model, schema_format):
    """sqlft.model.decoding (prefix cache, rows dropped as they finish) against plain generate() on left padding."""
    model.ref.schema_format = schema_format
    prompts = [model.sql_prompt(SCHEMA, q) for q in QUESTIONS]
    ids = [model.tokenizer(p)["input_ids"] for p in prompts]
    assert shared_prefix_length(ids) > 0.6 * min(map(len, ids))  # the schema is shared, so it is cached
    gen = GenerationConfig(max_new_tokens=24, batch_size=3)
    reference = [model.tokenizer.decode(row) for row in model._hf_generate(ids, gen)]
    cached = model.generate(prompts, gen)
    plain = model.generate(prompts, GenerationConfig(max_new_tokens=24, batch_size=3, prefix_cache=False))
    one_by_one = [model.generate([p], GenerationConfig(max_new_tokens=24, batch_size=1))[0] for p in prompts]
    assert [g.text for g in cached] == [g.text for g in plain] == [g.text for g in one_by_one] == \
        [cut_at_stop(r, model.stops) for r in reference]
    assert [g.prompt_tokens for g in cached] == [len(i) for i in ids]
    assert all(g.text for g in cached)


@pytest.mark.slow  # the real 135M model
def test_one_batch_over_several_schemas_gives_the_answers_of_separate_batches(model):
    model.ref.schema_format = "ddl"
    other = "CREATE TABLE city (city_id INT, name TEXT, population INT, country TEXT, mayor TEXT, founded INT);"
    prompts = sorted([model.sql_prompt(SCHEMA, q) for q in QUESTIONS] +
                     [model.sql_prompt(other, q) for q in ("Which city is the largest?", "How many cities are there?")])
    ids = [model.tokenizer(p)["input_ids"] for p in prompts]
    assert len(prefix_groups(ids)) == 2
    gen = GenerationConfig(max_new_tokens=20, batch_size=5)
    together = [g.text for g in model.generate(prompts, gen)]
    assert together == [g.text for g in model.generate(prompts, GenerationConfig(max_new_tokens=20, batch_size=1))]


@pytest.mark.slow  # the real 135M model
def test_sampling_is_seeded_and_differs_from_greedy(model):
    prompts = [model.sql_prompt(SCHEMA, q) for q in QUESTIONS]
    sampling = GenerationConfig(max_new_tokens=16, batch_size=3, do_sample=True, temperature=1.5, top_p=0.95)
    torch.manual_seed(0)
    first = [g.text for g in model.generate(prompts, sampling)]
    torch.manual_seed(0)
    assert [g.text for g in model.generate(prompts, sampling)] == first
    assert first != [g.text for g in model.generate(prompts, GenerationConfig(max_new_tokens=16, batch_size=3))]


@pytest.mark.slow  # the real 135M model
def test_rows_kept_after_they_finish_do_not_change_any_answer(model):
    """With 9 rows, finished rows stay in the batch until a quarter of it is done (they are fed their last token
    meanwhile): every answer must still be the one the row gives alone."""
    model.ref.schema_format = "ddl"
    questions = QUESTIONS + ["What is the name of the oldest singer?", "How many concerts were held in 2014?",
                             "List all countries of singers without duplicates.", "What is the average age?",
                             "Show the year of every concert.", "Which singers are older than 40?"]
    prompts = [model.sql_prompt(SCHEMA, q) for q in questions]
    gen = GenerationConfig(max_new_tokens=40, batch_size=9)
    together = model.generate(prompts, gen)
    assert len({g.new_tokens for g in together}) > 2  # rows finish at different steps
    alone = [model.generate([p], GenerationConfig(max_new_tokens=40, batch_size=1))[0] for p in prompts]
    assert [(g.text, g.new_tokens) for g in together] == [(g.text, g.new_tokens) for g in alone]


def test_roomy_layer_holds_what_concatenation_holds_and_grows_when_full():
    layer, parts = RoomyLayer(room=2), [torch.randn(3, 2, n, 4) for n in (5, 1, 1, 1, 4)]
    for i, part in enumerate(parts):
        keys, values = layer.update(part, -part)
        expected = torch.cat(parts[:i + 1], dim=2)
        assert torch.equal(keys, expected) and torch.equal(values, -expected)
        assert layer.get_seq_length() == expected.shape[2]
    layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(layer.keys, torch.cat(parts, dim=2)[[2, 0]])
    keys, _ = layer.update(torch.ones(2, 2, 1, 4), torch.ones(2, 2, 1, 4))
    assert keys.shape == (2, 2, 13, 4) and torch.equal(keys[:, :, -1], torch.ones(2, 2, 4))


def test_models_with_sliding_window_layers_keep_transformers_cache():
    from transformers import DynamicCache, LlamaConfig, MistralConfig

    llama = LlamaConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32)
    assert all(isinstance(layer, RoomyLayer) for layer in new_cache(llama, room=8).layers)
    mistral = MistralConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32,
                            sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    cache = new_cache(mistral, room=8)
    assert isinstance(cache, DynamicCache) and not any(isinstance(layer, RoomyLayer) for layer in cache.layers)
