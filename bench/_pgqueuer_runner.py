"""Runs inside bench/.venv-pgqueuer: enqueue N empty jobs, drain them with PgQueuer's
QueueManager fetching ``batch`` jobs per dequeue (its own batching, as documented).

Usage: python _pgqueuer_runner.py DSN N BATCH  → prints {"seconds": …, "jobs": N}
"""

import asyncio
import json
import sys
import time

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.domain.types import QueueExecutionMode


async def main(dsn: str, n: int, batch: int) -> None:
    conn = await asyncpg.connect(dsn)
    driver = AsyncpgDriver(conn)
    queries = Queries(driver)
    await queries.install()
    for start in range(0, n, 1000):
        size = min(1000, n - start)
        await queries.enqueue(["empty"] * size, [None] * size, [0] * size)
    qm = QueueManager(queries)

    @qm.entrypoint("empty")
    async def empty(job) -> None:
        return None

    started = time.perf_counter()
    await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
    seconds = time.perf_counter() - started
    await conn.close()
    print(json.dumps({"seconds": seconds, "jobs": n}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
