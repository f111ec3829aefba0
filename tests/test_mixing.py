"""Mixing by weight and splitting by database: shares honoured, repeats reported, no database in both sets."""

from collections import Counter
from pathlib import Path

import pytest

from sqlft.config import DatasetSpec
from sqlft.data.formats import load_records
from sqlft.data.mixing import mix, split
from sqlft.prompts.record import Record, Turn, sql_record


def shared_data(relative: str) -> Path:
    """A file under ../shared/data (real public samples), or skip when this checkout has none."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / relative
    if not path.exists():
        pytest.skip(f"real data sample not available: {path} (../shared/data is absent in this checkout)")
    return path


def dataset(name: str, size: int) -> list[Record]:
    return [Record(turns=[Turn("user", f"{name} {i}"), Turn("assistant", "ok")], source=f"{name}:{i}")
            for i in range(size)]


def origins(records: list[Record]) -> Counter:
    return Counter(r.source.split(":")[0] for r in records)


def test_all_weights_one_keeps_natural_sizes():
    a, b = dataset("a", 30), dataset("b", 10)
    mixture, shares = mix([(a, 1.0), (b, 1.0)], num_records=0, seed=0)
    assert sorted(r.source for r in mixture) == sorted(r.source for r in a + b)
    assert [(s.taken, s.repeated) for s in shares] == [(30, False), (10, False)]
    assert [r.source for r in mixture] != [r.source for r in a + b]  # shuffled


def test_all_weights_one_with_num_records_samples_uniformly():
    mixture, shares = mix([(dataset("a", 300), 1.0), (dataset("b", 100), 1.0)], num_records=100, seed=0)
    assert len(mixture) == 100 and len({r.source for r in mixture}) == 100
    assert 60 <= shares[0].taken <= 90 and shares[0].taken + shares[1].taken == 100


def test_weights_are_shares_without_replacement():
    mixture, shares = mix([(dataset("a", 100), 3.0), (dataset("b", 50), 1.0)], num_records=80, seed=1)
    assert origins(mixture) == {"a": 60, "b": 20}
    assert len({r.source for r in mixture}) == 80  # no record twice
    assert not any(s.repeated for s in shares)


def test_share_larger_than_dataset_repeats_it_evenly():
    small = dataset("small", 10)
    mixture, shares = mix([(dataset("big", 100), 1.0), (small, 3.0)], num_records=80, seed=0)
    assert origins(mixture) == {"big": 20, "small": 60}
    assert set(Counter(r.source for r in mixture if r.source.startswith("small")).values()) == {6}
    assert (shares[1].taken, shares[1].available, shares[1].repeated) == (60, 10, True)
    assert "repeated x6.00" in shares[1].describe()


def test_weights_with_num_records_zero_keep_the_total():
    mixture, _ = mix([(dataset("a", 90), 1.0), (dataset("b", 30), 2.0)], num_records=0, seed=0)
    assert origins(mixture) == {"a": 40, "b": 80}  # 120 records in total, shared 1:2


def test_rounding_adds_up():
    mixture, shares = mix([(dataset(n, 50), 1.0 + i / 10) for i, n in enumerate("abc")], num_records=10, seed=0)
    assert len(mixture) == 10 and sum(s.taken for s in shares) == 10


def test_mix_is_deterministic():
    datasets = [(dataset("a", 50), 2.0), (dataset("b", 20), 1.0)]
    first = [r.source for r in mix(datasets, 40, seed=7)[0]]
    assert first == [r.source for r in mix(datasets, 40, seed=7)[0]]
    assert first != [r.source for r in mix(datasets, 40, seed=8)[0]]


def test_bad_weights():
    with pytest.raises(ValueError, match="weights must be > 0"):
        mix([(dataset("a", 5), 0.0)], 0, seed=0)
    with pytest.raises(ValueError, match="dataset #1 has no records"):
        mix([(dataset("a", 5), 1.0), ([], 2.0)], 0, seed=0)


def sql_records(db_sizes: dict[str, int]) -> list[Record]:
    return [sql_record("CREATE TABLE t (a INT)", f"q{i}", "SELECT 1", db_id=db, source=f"{db}:{i}")
            for db, size in db_sizes.items() for i in range(size)]


def test_split_by_db_has_no_overlap_and_aims_at_the_fraction():
    records = sql_records({f"db{i}": 5 + i % 7 for i in range(40)})
    loose = dataset("chat", 50)  # no db_id: split at random
    train, val = split(records + loose, val_fraction=0.2, by_db=True, seed=0)
    assert not {r.db_id for r in train if r.db_id} & {r.db_id for r in val if r.db_id}
    assert sorted(map(id, train + val)) == sorted(map(id, records + loose))  # every record once
    with_db = sum(1 for r in val if r.db_id)
    assert abs(with_db - 0.2 * len(records)) <= 11  # within one database of the target
    assert sum(1 for r in val if not r.db_id) == 10
    assert (train, val) == split(records + loose, val_fraction=0.2, by_db=True, seed=0)  # deterministic


def test_split_random_and_empty():
    records = sql_records({"only": 100})
    train, val = split(records, val_fraction=0.1, by_db=False, seed=0)
    assert (len(train), len(val)) == (90, 10)
    assert {r.source for r in val} != {f"only:{i}" for i in range(90, 100)}  # a random pick, not the tail
    assert split(records, val_fraction=0.0, by_db=True, seed=0) == (records, [])
    # One database cannot be split without sharing it: it all stays in train (the caller reports the empty set).
    assert split(records, val_fraction=0.1, by_db=True, seed=0) == (records, [])


def test_real_spider_split_by_db():
    records, _ = load_records(DatasetSpec(path=str(shared_data("spider_train/spider_train.jsonl"))))
    train, val = split(records, val_fraction=0.1, by_db=True, seed=0)
    assert not {r.db_id for r in train} & {r.db_id for r in val}
    assert 0.09 * len(records) <= len(val) <= 0.11 * len(records)


def test_val_dbs_hold_out_exactly_those_databases():
    records = [sql_record("CREATE TABLE t (a INT)", f"q{i}", "SELECT a FROM t", db_id=f"db{i % 5}") for i in range(50)]
    train, val = split(records, 0.5, True, 0, val_dbs=["db1", "db3"])
    assert {r.db_id for r in val} == {"db1", "db3"} and len(val) == 20
    assert not {r.db_id for r in train} & {"db1", "db3"}
    from sqlft.data.errors import DataError
    with pytest.raises(DataError, match="db9"):
        split(records, 0.5, True, 0, val_dbs=["db1", "db9"])


class WordTokenizer:
    """One token per word: enough for sqlft.training.dataset to measure lengths without a model's tokenizer."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def test_a_weight_above_one_survives_deduplication(tmp_path):
    """Deduplication runs before mixing: the repeats that honour a weight of 3 are not dropped as duplicates
    (they were, when mixing ran first, silently undoing the weight)."""
    import json

    from sqlft.config import load_config
    from sqlft.training.dataset import load_split

    for name in ("a", "b"):
        rows = [{"context": f"CREATE TABLE {name} (x INT)", "question": f"{name} question {i}?",
                 "answer": f"SELECT {i} FROM {name}"} for i in range(4)]
        rows.append(rows[0])  # one real duplicate in each file, which must still go
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, [f"data.train=[{{path: {tmp_path / 'a.jsonl'}, weight: 3}}, "
                                f"{{path: {tmp_path / 'b.jsonl'}, weight: 1}}]", "data.max_length=512"])
    kept, examples, report, _ = load_split(config.data.train, config, WordTokenizer())
    # 8 distinct records reweighted 3:1 -> 6 from a (4, then 2 repeated), 2 from b
    assert Counter(r.context.split()[2] for r in kept) == {"a": 6, "b": 2}
    assert report.counts == {"duplicate": 2} and len(examples) == len(kept) == 8
