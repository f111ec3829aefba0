"""Mixing several datasets by weight, and the train/validation split (whole databases go to validation).

Both are deterministic for a seed: the same config gives the same training set on every machine.
"""

import random
from dataclasses import dataclass

from sqlft.data.errors import DataError
from sqlft.prompts.record import Record


@dataclass
class MixShare:
    """What mix() took from one dataset."""
    available: int  # records the dataset has
    weight: float
    taken: int  # records in the mixture
    repeated: bool  # taken > available: every record used floor(taken/available) times, the rest sampled

    def describe(self) -> str:
        how = f"repeated x{self.taken / self.available:.2f}" if self.repeated else "no repeats"
        return f"{self.taken} of {self.available} (weight {self.weight:g}, {how})"


def mix(datasets: list[tuple[list[Record], float]], num_records: int, seed: int
        ) -> tuple[list[Record], list[MixShare]]:
    """Shuffled mixture of (records, weight) datasets, and what was taken from each.

    The rule:
    - Every weight 1.0 (the default): natural proportions. num_records=0 takes every record; num_records=N takes
      a uniform sample of N from all records together (repeating only when N exceeds the total).
    - Otherwise weights are relative shares: dataset i gets N * w_i / sum(w) records (largest-remainder rounding,
      so the counts add up to N), where N = num_records, or the total of all datasets when num_records=0 (same
      amount of data, reweighted).
    A dataset is sampled without replacement while it has enough records. When its share is larger than the
    dataset, every record is used floor(share / size) times and the remainder is sampled without replacement
    (fewer repeats of any one record than sampling with replacement); MixShare.repeated says so.
    """
    if any(weight <= 0 for _, weight in datasets):
        raise ValueError("mixing weights must be > 0")
    rng = random.Random(seed)
    sizes = [len(records) for records, _ in datasets]
    total = sum(sizes)
    if all(weight == 1.0 for _, weight in datasets):
        pool = [record for records, _ in datasets for record in records]
        picked = _sample(range(len(pool)), num_records or total, rng)
        origin = [i for i, size in enumerate(sizes) for _ in range(size)]  # dataset index of each pool entry
        taken = [0] * len(datasets)
        for p in picked:
            taken[origin[p]] += 1
        mixture = [pool[p] for p in picked]
    else:
        taken = _shares([weight for _, weight in datasets], num_records or total)
        mixture = []
        for i, ((records, _), count) in enumerate(zip(datasets, taken)):
            if count and not records:
                raise ValueError(f"dataset #{i} has no records but its weight asks for {count}")
            mixture += [records[p] for p in _sample(range(len(records)), count, rng)]
    rng.shuffle(mixture)
    shares = [MixShare(size, weight, count, count > size) for (_, weight), size, count in zip(datasets, sizes, taken)]
    return mixture, shares


def _shares(weights: list[float], n: int) -> list[int]:
    """n split in proportion to weights, as integers that add up to n (largest remainder first)."""
    exact = [n * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[:n - sum(counts)]:
        counts[i] += 1
    return counts


def _sample(indices: range, count: int, rng: random.Random) -> list[int]:
    """count indices: whole copies of `indices` while count exceeds it, then a sample without replacement."""
    full, rest = divmod(count, len(indices)) if len(indices) else (0, 0)
    return list(indices) * full + rng.sample(indices, rest)


def split(records: list[Record], val_fraction: float, by_db: bool, seed: int,
          val_dbs: list[str] = ()) -> tuple[list[Record], list[Record]]:
    """(train, validation), each in the input order.

    val_dbs: exactly these databases are held out (a fixed test set that does not move when the data or its
    filtering changes, so runs can be compared on the same questions); val_fraction is then not used.
    by_db: records with a db_id go to validation a whole database at a time (no database in both sets), picking
    databases in a seeded random order while that brings validation closer to val_fraction of those records;
    records without a db_id are split at random. val_fraction=0 gives an empty validation set.
    """
    if val_dbs:
        held_out = set(val_dbs)
        missing = held_out - {r.db_id for r in records}
        if missing:
            raise DataError(f"data.val_dbs names databases that no training record has: {sorted(missing)}; "
                            "check the names against the db_id values of data.train")
        return [r for r in records if r.db_id not in held_out], [r for r in records if r.db_id in held_out]
    if val_fraction <= 0:
        return list(records), []
    rng = random.Random(seed)
    val: set[int] = set()
    loose = list(range(len(records)))
    if by_db:
        by_database: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            if record.db_id:
                by_database.setdefault(record.db_id, []).append(i)
        loose = [i for i, record in enumerate(records) if not record.db_id]
        target = val_fraction * (len(records) - len(loose))
        names = sorted(by_database)  # sorted first: the shuffle must not depend on the input order of databases
        rng.shuffle(names)
        for name in names:
            members = by_database[name]
            if abs(len(val) + len(members) - target) < abs(len(val) - target):
                val.update(members)
    val.update(rng.sample(loose, round(val_fraction * len(loose))))
    train = [record for i, record in enumerate(records) if i not in val]
    return train, [record for i, record in enumerate(records) if i in val]
