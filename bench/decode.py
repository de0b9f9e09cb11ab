"""Decode cost per message: the ingest's validation of a run of messages, on its own (no Kafka, no ClickHouse).

The messages are bench/ingest.py's (8 readings each). Printed: microseconds per message for what the ingest runs
(plantwatch.reading.decode_run: msgspec's structs into typed Arrow columns, the conflict check included), what it
falls back to (decode_many + without_conflicts, made an Arrow table: what the ingest did before), the
message-by-message path below that, and msgspec's parse alone. The best of several repeats, so other work on the
machine moves it little. Where the whole ingest's CPU goes: bench/ingest.py --profile.

    .venv/bin/python bench/decode.py [--run 500]
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import message

from plantwatch.reading import (
    _checked_messages,
    _cleared_run,
    _decode_wire,
    decode_many,
    decode_run,
    readings_table,
    without_conflicts,
)


def per_message_us(fn: Callable[[], object], messages: int, number: int = 100) -> float:
    # CPU time, not wall time: the cores are shared, and a waiting process is not a slower decoder.
    timer = time.process_time
    return min(timeit.repeat(fn, number=number, repeat=7, timer=timer)) / number / messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=int, default=500, help="messages in a run (the ingest's poll_messages)")
    args = parser.parse_args()
    raws = [message(i, 1_795_800_000_000 + i)[1] for i in range(args.run)]
    offsets = list(range(args.run))
    assert sum(decode_many(raws).counts) == 8 * args.run  # and the identifiers are known from now on
    assert _cleared_run(raws) is not None, "the whole-run path should take this run"
    ingest = per_message_us(lambda: decode_run(raws, offsets), args.run)
    fast = per_message_us(lambda: readings_table(without_conflicts(decode_many(raws), offsets).columns), args.run)
    slow = per_message_us(lambda: _checked_messages(raws), args.run)
    parse = per_message_us(lambda: list(map(_decode_wire, raws)), args.run)
    print(f"runs of {args.run} messages, {len(raws[0])} bytes and 8 readings each")
    print(f"decode_run (the ingest's, into Arrow):    {ingest:5.2f} us per message")
    print(f"decode_many + conflicts + Arrow table:    {fast:5.2f} us per message ({fast / ingest:.1f}x)")
    print(f"message by message (fallback path):       {slow:5.2f} us per message, Python lists only")
    print(f"msgspec parse alone:                      {parse:5.2f} us per message ({parse / ingest:.0%} of decode_run)")


if __name__ == "__main__":
    main()
