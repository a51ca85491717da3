"""Columnar builder for synthetic bookings: every stream adds whole numpy arrays, never single rows."""

from __future__ import annotations

import numpy as np
import polars as pl

COLUMNS = (
    "acc",
    "day",
    "minute",
    "direction",
    "amount",
    "channel",
    "cp_acc",
    "cp_ext",
    "cp_type",
    "cp_name",
    "cp_country",
    "mcc",
    "city",
    "description",
    "device",
)


class Cat:
    """A string column given as a small vocabulary and an index array (cheap for millions of rows)."""

    def __init__(self, words, index):
        self.words, self.index = list(words), np.asarray(index)


NUMERIC = {"acc", "day", "minute", "amount", "cp_acc"}


class Events:
    """Collects bookings as arrays. `acc`/`cp_acc` are population indices (-1: none/external).

    String columns are stored as integer codes into a per-column vocabulary, so adding a stream
    costs a few numpy operations and the final frame is built once.
    """

    def __init__(self, rng: np.random.Generator, days: int):
        self.rng, self.days = rng, days
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in COLUMNS}
        self.vocab: dict[str, dict[str, int]] = {k: {} for k in COLUMNS if k not in NUMERIC}

    def _codes(self, k: str, v, n: int) -> np.ndarray:
        voc = self.vocab[k]
        if v is None:
            return np.full(n, -1, dtype=np.int32)
        if isinstance(v, (str, np.str_)):
            return np.full(n, voc.setdefault(str(v), len(voc)), dtype=np.int32)
        if isinstance(v, Cat):  # words indexed by an int array: no per-row strings at all
            table = np.array([-1 if w is None else voc.setdefault(str(w), len(voc)) for w in v.words], dtype=np.int32)
            return table[np.broadcast_to(np.asarray(v.index), (n,))]
        arr = np.asarray(v)
        if arr.ndim == 0:
            return self._codes(k, None if arr.item() is None else str(arr.item()), n)
        if arr.dtype.kind in "iu":  # integer keys (devices): unique on ints is cheap
            uniq, inv = np.unique(arr, return_inverse=True)
            table = np.array([voc.setdefault(str(u), len(voc)) for u in uniq.tolist()], dtype=np.int32)
            return table[inv].astype(np.int32)
        if arr.dtype == object:
            isnull = np.array([x is None for x in arr.tolist()], dtype=bool)
            arr = np.where(isnull, "", arr).astype(str)
        else:
            isnull = np.zeros(len(arr), dtype=bool)
            arr = arr.astype(str)
        uniq, inv = np.unique(arr, return_inverse=True)
        table = np.array([voc.setdefault(str(u), len(voc)) for u in uniq], dtype=np.int32)
        out = table[inv].astype(np.int32)
        out[isnull] = -1
        return out

    def add(
        self,
        acc,
        day,
        minute,
        direction,
        amount,
        channel,
        *,
        cp_acc=-1,
        cp_ext=None,
        cp_type=None,
        cp_name=None,
        cp_country=None,
        mcc=None,
        city=None,
        description=None,
        device=None,
    ) -> None:
        acc = np.asarray(acc, dtype=np.int64)
        n = len(acc)
        if n == 0:
            return
        day = np.broadcast_to(np.asarray(day, dtype=np.int64), (n,))
        keep = (day >= 0) & (day < self.days)
        cols = {
            "acc": acc,
            "day": day,
            "minute": minute,
            "direction": direction,
            "amount": amount,
            "channel": channel,
            "cp_acc": cp_acc,
            "cp_ext": cp_ext,
            "cp_type": cp_type,
            "cp_name": cp_name,
            "cp_country": cp_country,
            "mcc": mcc,
            "city": city,
            "description": description,
            "device": device,
        }
        for k, v in cols.items():
            if k in NUMERIC:
                arr = np.broadcast_to(np.asarray(v, dtype=np.float64 if k == "amount" else np.int64), (n,))
            else:
                arr = self._codes(k, v, n)
            self.parts[k].append(arr[keep])

    def transfer(
        self,
        src,
        dst,
        day,
        minute,
        amount,
        channel="transfer",
        *,
        description=None,
        device_src=None,
        src_type="person",
        dst_type="person",
        src_name=None,
        dst_name=None,
        city=None,
    ) -> None:
        """Money between two population accounts: a debit on src and a credit on dst."""
        self.add(
            src,
            day,
            minute,
            "debit",
            amount,
            channel,
            cp_acc=dst,
            cp_type=dst_type,
            cp_name=dst_name,
            cp_country="NL",
            description=description,
            device=device_src,
            city=city,
        )
        self.add(
            dst,
            day,
            minute,
            "credit",
            amount,
            channel,
            cp_acc=src,
            cp_type=src_type,
            cp_name=src_name,
            cp_country="NL",
            description=description,
        )

    def frame(self) -> pl.DataFrame:
        data = {}
        for k in COLUMNS:
            arr = np.concatenate(self.parts[k])
            if k in NUMERIC:
                data[k] = pl.Series(k, np.round(np.clip(arr, 0.01, None), 2) if k == "amount" else arr)
            else:
                # categorical: millions of rows hold 4-byte codes, not strings (code -1 -> the trailing null)
                words = pl.Series(k, list(self.vocab[k]) + [None], dtype=pl.Utf8).cast(pl.Categorical)
                data[k] = words.gather(np.where(arr < 0, len(words) - 1, arr))
            self.parts[k] = []
        return pl.DataFrame(data)


class Shifted:
    """Bookings of one scenario that starts on day `onset` and runs `days` days (stream mode, synthetic/typologies.py):
    it books on its own days 0..days-1 and they land from `onset` on; a booking after its last day (a late instalment)
    or outside the data is dropped (Events drops a negative day)."""

    def __init__(self, ev: Events, onset: int, days: int):
        self.ev, self.onset, self.rng, self.days = ev, onset, ev.rng, days

    def _day(self, day) -> np.ndarray:
        day = np.asarray(day, dtype=np.int64)
        return np.where(day < self.days, day + self.onset, -1)

    def add(self, acc, day, *args, **kwargs) -> None:
        self.ev.add(acc, self._day(day), *args, **kwargs)

    def transfer(self, src, dst, day, *args, **kwargs) -> None:
        self.ev.transfer(src, dst, self._day(day), *args, **kwargs)


def _dtype(k: str):
    return {"acc": pl.Int64, "day": pl.Int64, "minute": pl.Int64, "amount": pl.Float64, "cp_acc": pl.Int64}.get(k, pl.Utf8)


def minutes(rng: np.random.Generator, n: int, profile: str) -> np.ndarray:
    """Minute of the local day for n bookings with a time-of-day profile."""
    if profile == "day":  # shops, card spending: 08-22, peak late afternoon
        h = np.clip(rng.normal(15, 3.2, n), 7, 22.9)
    elif profile == "office":  # batch payments, salaries, direct debits
        h = rng.uniform(6, 10, n)
    elif profile == "evening":  # p2p among friends
        h = np.clip(rng.normal(18, 3.5, n), 7, 23.9)
    elif profile == "night":  # 22:00-05:59
        h = (rng.uniform(22, 30, n)) % 24
    elif profile == "any":
        h = rng.uniform(0, 24, n)
    else:
        raise ValueError(profile)
    return (h * 60).astype(np.int64)
