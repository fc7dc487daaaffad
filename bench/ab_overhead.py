"""A/B at concurrency 1: two gateways at once, the same code at two commits, on one
upstream, called in interleaved rounds (direct, A, B, rotating who goes first), so both
see the same machine at the same moments. For refactors that must not cost latency.

Run:  git worktree add /tmp/before <commit>
      .venv/bin/python bench/ab_overhead.py --before /tmp/before/src [--rounds 2000]
A is the gateway with ``--before`` first on PYTHONPATH, B this checkout. Each round is
one stream and one JSON call per target, with the bodies, upstream and checks of
bench/overhead.py (TTFT = request sent -> first SSE frame with text; whole = the stream
read to [DONE]; JSON = the answer read). Times in ms."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import overhead as ov


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def _run(before_src: str, rounds: int) -> list[str]:
    upstream = ov.Upstream("fast", 0)
    tmp = Path(tempfile.mkdtemp())
    gateways: dict[str, ov.Gateway] = {}
    try:
        for name, pythonpath in (("A (before)", before_src), ("B (this)", None)):
            (tmp / name).mkdir()
            if pythonpath:
                os.environ["PYTHONPATH"] = pythonpath
            gateways[name] = ov.Gateway(upstream.base_url, tmp / name)
            os.environ.pop("PYTHONPATH", None)
        return await _rounds(upstream, gateways, rounds)
    finally:
        for gateway in gateways.values():
            gateway.close()
        upstream.close()


async def _rounds(upstream: ov.Upstream, gateways: dict[str, ov.Gateway], rounds: int) -> list[str]:
    direct = httpx.AsyncClient(
        base_url=upstream.base_url, headers={"Authorization": f"Bearer {ov.API_KEY}"}
    )
    clients = {
        name: httpx.AsyncClient(base_url=g.base, headers={"X-API-Key": ov.ADMIN_KEY})
        for name, g in gateways.items()
    }

    def calls(name: str) -> tuple[Callable[[], Awaitable[ov.Sample]], ...]:
        if name == "direct":
            return (
                lambda: ov._stream_call(direct, "/chat/completions", ov._direct_body(True)),
                lambda: ov._json_call(direct, "/chat/completions", ov._direct_body(False)),
            )
        client = clients[name]
        return (
            lambda: ov._stream_call(client, "/v1/generate", ov._gateway_body(True)),
            lambda: ov._json_call(client, "/v1/generate", ov._gateway_body(False)),
        )

    ways = ["direct", *gateways]
    samples: dict[str, tuple[list[ov.Sample], list[ov.Sample]]] = {w: ([], []) for w in ways}
    for i in range(50 + rounds):  # the first 50: warm-up
        k = i % len(ways)
        for kind in (0, 1):
            for way in ways[k:] + ways[:k]:
                sample = await calls(way)[kind]()
                if i >= 50:
                    samples[way][kind].append(sample)
    lines = [
        "| target | TTFT p50 | TTFT p90 | TTFT p99 | whole p50 | whole p99 | JSON p50 | JSON p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for way, (streams, answers) in samples.items():
        ttft = [t for _, t in streams if t is not None]
        whole = [e for e, _ in streams]
        json_ = [e for e, _ in answers]
        row = [_pct(ttft, 0.5), _pct(ttft, 0.9), _pct(ttft, 0.99), _pct(whole, 0.5)]
        row += [_pct(whole, 0.99), _pct(json_, 0.5), _pct(json_, 0.99)]
        lines.append(f"| {way} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the src/ folder of the A checkout")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    print("\n".join(asyncio.run(_run(args.before, args.rounds))))


if __name__ == "__main__":
    main()
