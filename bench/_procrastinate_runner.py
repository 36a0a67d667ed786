"""Runs inside bench/.venv-procrastinate: defer N empty jobs, drain them with W workers.

Usage: python _procrastinate_runner.py CONNINFO N WORKERS  → prints {"seconds": …, "jobs": N}
"""

import asyncio
import json
import sys
import time

import procrastinate


async def main(conninfo: str, n: int, workers: int) -> None:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="empty")
    async def empty() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, n, 1000):
            await empty.batch_defer_async(*({} for _ in range(min(1000, n - start))))
        started = time.perf_counter()
        await app.run_worker_async(concurrency=workers, wait=False, install_signal_handlers=False,
                                   listen_notify=False, fetch_job_polling_interval=0.05)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "jobs": n}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
