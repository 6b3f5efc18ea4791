"""The published CSV format of Sudoku-Extreme and Maze-Hard, read and written.

    source,question,answer,rating
    puzzles0_kaggle,..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3..,483921657...,0

One puzzle per row; `question` and `answer` are the grid read row by row as characters. Any malformed
row stops the read with a `DataError` naming the file, the line and the reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterable

import numpy as np

from benchmarks.errors import DataError

HEADER = ("source", "question", "answer", "rating")


@dataclass
class Rows:
    path: Path
    lines: np.ndarray  # [M] line number of each row in the file (for later error messages)
    sources: list[str]
    questions: np.ndarray  # [M, L] uint8 codes after `decode`
    answers: np.ndarray  # [M, L] uint8
    ratings: np.ndarray  # [M] float64 (nan where the file has none)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(
            self.path,
            self.lines[idx],
            [self.sources[i] for i in idx],
            self.questions[idx],
            self.answers[idx],
            self.ratings[idx],
        )


def read(
    path: Path,
    length: int,
    q_alphabet: str,
    a_alphabet: str,
    decode: Callable[[bytes], np.ndarray] | None = None,
) -> Rows:
    """Read and check every row: `question`/`answer` must be `length` characters from their
    alphabets; `rating` (optional column) must be a number. Characters are mapped to their index in
    `a_alphabet` (question characters must appear in it too unless `decode` is given)."""
    path = Path(path)
    qset, aset = set(q_alphabet), set(a_alphabet)
    lut = np.full(256, 255, np.uint8)
    for i, ch in enumerate(a_alphabet):
        lut[ord(ch)] = i
    sources, qs, as_, ratings, lines = [], [], [], [], []
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror}") from None
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(path, 1, "empty file; expected the header " + ",".join(HEADER)) from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(path, 1, f"unreadable CSV ({e})") from None
        cols = [h.strip().lower() for h in header]
        if "question" not in cols or "answer" not in cols:
            raise DataError(
                path, 1, f"header {header!r} lacks the columns question, answer (expected {','.join(HEADER)})"
            )
        iq, ia = cols.index("question"), cols.index("answer")
        isrc = cols.index("source") if "source" in cols else None
        irat = cols.index("rating") if "rating" in cols else None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as e:
                raise DataError(path, reader.line_num + 1, f"unreadable CSV ({e})") from None
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(cols):
                raise DataError(path, line, f"expected {len(cols)} fields ({','.join(cols)}), got {len(row)}")
            q, a = row[iq].strip(), row[ia].strip()
            for what, s in (("question", q), ("answer", a)):
                if len(s) != length or not s.isascii():
                    raise DataError(
                        path,
                        line,
                        f"{what} has {len(s)} characters, expected {length}"
                        if len(s) != length
                        else f"{what} has non-ASCII characters",
                    )
            rating = float("nan")
            if irat is not None and row[irat].strip():
                try:
                    rating = float(row[irat])
                except ValueError:
                    raise DataError(path, line, f"rating {row[irat]!r} is not a number") from None
            sources.append(row[isrc] if isrc is not None else "")
            qs.append(q)
            as_.append(a)
            ratings.append(rating)
            lines.append(line)
    if not qs:
        raise DataError(path, None, "no puzzle rows after the header")
    qb = np.frombuffer("".join(qs).encode("ascii"), np.uint8).reshape(-1, length)
    ab = np.frombuffer("".join(as_).encode("ascii"), np.uint8).reshape(-1, length)
    # Characters are checked for all rows at once (a per-row set check would dominate the read
    # of the 3.8M-row published training file); the first bad row is reported.
    for what, b, allowed in (("question", qb, qset), ("answer", ab, aset)):
        ok = np.zeros(256, bool)
        ok[[ord(ch) for ch in allowed]] = True
        bad_rows = np.flatnonzero(~ok[b].all(1))
        if len(bad_rows):
            i = int(bad_rows[0])
            bad = sorted({chr(x) for x in b[i].tolist()} - allowed)
            raise DataError(
                path,
                int(lines[i]),
                f"{what} contains {''.join(bad)!r}; allowed characters: {''.join(sorted(allowed))!r}",
            )
    questions = decode(qb) if decode is not None else lut[qb]
    return Rows(
        path, np.asarray(lines, np.int64), sources, questions, lut[ab], np.asarray(ratings, np.float64)
    )


def write(path: Path, rows: Iterable[tuple[str, str, str, float | int]]) -> int:
    """Write rows (source, question, answer, rating) with the header. Returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for src, q, a, r in rows:
            w.writerow((src, q, a, "" if r is None or r != r else (int(r) if float(r).is_integer() else r)))
            n += 1
    tmp.replace(path)
    return n
