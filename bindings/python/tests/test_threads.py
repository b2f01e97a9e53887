"""Connections are shared by threads, and operations release the GIL while they run."""

import threading
import time

from datahike import Database, database

from conftest import file_config


def test_concurrent_writers_and_readers(tmp_path):
    db = Database(file_config(tmp_path / "threads", flexible=True))
    db.create()
    errors = []

    def writer(n):
        try:
            for i in range(20):
                db.transact([{"writer": n, "i": i}])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader():
        try:
            for _ in range(20):
                db.q('[:find (count ?e) . :where [?e :writer]]')
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.q('[:find (count ?e) . :where [?e :writer]]') == 80
    db.delete()


def test_gil_is_released_while_a_query_runs(mem_config_flexible):
    with database(mem_config_flexible) as db:
        db.transact([{"n": i} for i in range(1500)])
        query = '[:find (count ?a) . :where [?a :n ?x] [?b :n ?y] [(< ?x ?y)]]'
        started = time.perf_counter()
        assert db.q(query) == 1499
        alone = time.perf_counter() - started
        ticks = 0
        done = threading.Event()

        def run():
            db.q(query)
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)
        thread.join()
        # Had the query held the GIL, this thread could not have run while it did.
        assert ticks >= max(3, int(alone / 0.01)), (ticks, alone)
