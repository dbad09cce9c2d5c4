"""Benchmark: subscriber import, segment counts and recipient iteration at scale.

For 100k and 1M generated rows it prints, each phase in a fresh process so that its peak
RSS is its own:
  * import rows per second (`subscribers import` through the library, one transaction),
    against a baseline of plain sqlite3 executemany of the same rows into a bare table;
  * segment count time for `everyone` and for a tag + attribute segment;
  * full iteration time over every recipient of `everyone`, in batches;
  * peak RSS of each phase.

Run: .venv/bin/python bench/audience.py [--rows 100000 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COUNTRIES = ["PA", "CR", "MX", "GT", "HN", "SV", "NI", "BZ", "US", "CA"]
SECTORS = ["ngo", "un", "gov", "press", "academia"]
TAGS = ["press", "partner", "vip", "2021", ""]
SEGMENTS = """\
segments:
  partners-in-panama:
    tags: {any: [partner]}
    attributes:
      country: {equals: PA}
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, rows: int) -> None:
    rng = random.Random(rows)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "language", "tags", "country", "sector"])
        for i in range(rows):
            writer.writerow(
                [
                    f"reader{i}.{rng.randrange(10**6)}@example{i % 500}.com",
                    f"Reader {i}",
                    rng.choice(["en", "es", "pt"]),
                    rng.choice(TAGS),
                    rng.choice(COUNTRIES),
                    rng.choice(SECTORS),
                ]
            )


def phase_import(db: Path, source: Path) -> dict[str, float]:
    from newsletter.audience.csvio import import_csv
    from newsletter.store import open_database

    engine = open_database(f"sqlite:///{db}")
    start = time.perf_counter()
    report = import_csv(engine, source, list_name="bulletin", default_list="bulletin")
    seconds = time.perf_counter() - start
    assert report.rejected == 0, report.problems[:3]
    return {"seconds": seconds, "added": report.added, "rss": peak_rss_mb()}


def phase_baseline(db: Path, source: Path) -> dict[str, float]:
    """The floor: csv reading and one executemany into a bare table, no checks at all."""
    start = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT, attrs TEXT)"
    )
    with source.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        conn.executemany(
            "INSERT INTO people (email, name, attrs) VALUES (?, ?, ?)",
            ((r[0].lower(), r[1], json.dumps({"country": r[4], "sector": r[5]})) for r in reader),
        )
    conn.commit()
    conn.close()
    return {"seconds": time.perf_counter() - start, "rss": peak_rss_mb()}


def _segments(db: Path, name: str):  # type: ignore[no-untyped-def]
    from newsletter.audience.segments import load_segments
    from newsletter.store import open_database

    seg_file = db.with_suffix(".segments.yaml")
    seg_file.write_text(SEGMENTS)
    return open_database(f"sqlite:///{db}"), load_segments(seg_file, "bulletin").get(name)


def phase_count(db: Path, name: str) -> dict[str, float]:
    from newsletter.audience.segments import count

    engine, named = _segments(db, name)
    count(engine, named)  # warm the page cache, as a second `segments list` would be
    start = time.perf_counter()
    n = count(engine, named)
    return {"seconds": time.perf_counter() - start, "count": n, "rss": peak_rss_mb()}


def phase_count_baseline(db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db)
    conn.execute("SELECT count(*) FROM subscribers").fetchone()
    start = time.perf_counter()
    n = conn.execute("SELECT count(*) FROM subscribers").fetchone()[0]
    return {"seconds": time.perf_counter() - start, "count": n, "rss": peak_rss_mb()}


def phase_iterate(db: Path) -> dict[str, float]:
    from newsletter.audience.segments import recipients

    engine, named = _segments(db, "everyone")
    start = time.perf_counter()
    n = 0
    for batch in recipients(engine, named, batch_size=1000):
        n += len(batch)
    return {"seconds": time.perf_counter() - start, "count": n, "rss": peak_rss_mb()}


def run_phase(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        kind, *rest = args.phase
        db = Path(rest[0])
        result = {
            "import": lambda: phase_import(db, Path(rest[1])),
            "baseline": lambda: phase_baseline(db, Path(rest[1])),
            "count": lambda: phase_count(db, rest[1]),
            "count-baseline": lambda: phase_count_baseline(db),
            "iterate": lambda: phase_iterate(db),
        }[kind]()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for rows in args.rows:
            source = Path(tmp) / f"people-{rows}.csv"
            generate(source, rows)
            db = Path(tmp) / f"audience-{rows}.db"
            imp = run_phase("import", str(db), str(source))
            base = run_phase("baseline", str(Path(tmp) / f"baseline-{rows}.db"), str(source))
            print(f"{rows:,} rows ({source.stat().st_size / 2**20:.0f} MB of CSV):")
            print(
                f"  import      {imp['seconds']:7.2f} s  {rows / imp['seconds']:>9,.0f} rows/s  "
                f"peak RSS {imp['rss']:5.0f} MB"
            )
            print(
                f"  baseline    {base['seconds']:7.2f} s  {rows / base['seconds']:>9,.0f} rows/s  "
                f"(plain sqlite3 executemany, no validation)  "
                f"ratio {imp['seconds'] / base['seconds']:.1f}x"
            )
            everyone = run_phase("count", str(db), "everyone")
            narrow = run_phase("count", str(db), "partners-in-panama")
            bare = run_phase("count-baseline", str(db))
            ms = {k: v["seconds"] * 1000 for k, v in (("all", everyone), ("narrow", narrow))}
            print(
                f"  count       {ms['all']:7.0f} ms for everyone ({everyone['count']:,}), "
                f"{ms['narrow']:.0f} ms for partners-in-panama ({narrow['count']:,})"
            )
            print(
                f"  baseline    {bare['seconds'] * 1000:7.0f} ms for a bare count(*), "
                f"ratio {everyone['seconds'] / bare['seconds']:.1f}x"
            )
            it = run_phase("iterate", str(db))
            rate = it["count"] / it["seconds"]
            print(
                f"  iterate     {it['seconds']:7.2f} s  {rate:>9,.0f} recipients/s  "
                f"peak RSS {it['rss']:5.0f} MB"
            )


if __name__ == "__main__":
    main()
