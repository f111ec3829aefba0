"""Identifier-constrained decoding: table names after FROM/JOIN and columns after 'alias.' must exist."""

import pytest

from sqlft.constrained import valid_continuation

TABLES = {"party": {"party_id", "party_theme", "location"}, "host": {"host_id", "name", "age"}}


@pytest.mark.parametrize("text, token, ok", [
    ("SELECT * FROM", " party", True),            # the usual BPE token: space and name together
    ("SELECT * FROM", " par", True),              # a name still being written
    ("SELECT * FROM", " parties", False),         # no such table
    ("SELECT * FROM par", "ty AS", True),         # completed by the token, then more text
    ("SELECT * FROM par", "tyx", False),
    ("SELECT * FROM party JOIN", " guests", False),
    ("SELECT * FROM", " (", True),                # a subquery
    ("SELECT T1.", "name", True),                 # alias not defined yet: any table's column
    ("SELECT T1.name FROM host AS T1 WHERE T1.", "theme", False),  # T1 is host, which has no theme
    ("SELECT T1.name FROM host AS T1 WHERE T1.", "age >", True),
    ("SELECT T1", ".age", True),                  # dot and name in one token
    ("SELECT T1", ".agex", False),
    ("SELECT host.", "Name", True),               # case does not matter
    ("SELECT 3", ".5", True),                     # a number, not a qualifier
    ("SELECT count(*) FROM party WHERE", " whatever", True),  # elsewhere the model writes freely
])
def test_valid_continuation(text, token, ok):
    assert valid_continuation(text, token, TABLES) is ok


def test_the_processor_turns_the_models_choice_into_an_existing_table(embedded_model_dir):
    import torch

    from sqlft.constrained import IdentifierConstraint
    from sqlft.modeling import load_tokenizer

    tokenizer = load_tokenizer(str(embedded_model_dir))
    ddl = "CREATE TABLE singer (singer_id INT, name TEXT);\nCREATE TABLE concert (concert_id INT, year INT);"
    written = tokenizer("SELECT name FROM")["input_ids"]
    wrong, right, free = (tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (" singers", " singer", " ("))
    assert tokenizer.decode([wrong]) == " singers"  # one token each, as the test needs
    scores = torch.zeros(1, len(tokenizer))
    scores[:, wrong], scores[:, right], scores[:, free] = 5.0, 4.0, 3.0
    constraint = IdentifierConstraint(tokenizer, ["CREATE TABLE other (x INT);", ddl])
    out = constraint([1], torch.tensor([written]), scores.clone())  # the batch row is input row 1
    assert out[0].argmax().item() == right  # " singers" is no table: the best valid token wins
    assert out[0, free] == 3.0 and out[0, wrong] == float("-inf")
    assert constraint.corrected == 1
