# The testing kit's example, as docs/testing.md shows it (the page includes this file): a task
# run by a real Celery worker (celery.contrib.testing.worker.start_worker, in this process), its
# result stored in and read from the kit's local S3 store. Needs: pip install 's3result[testing]'.
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker


@pytest.fixture
def app(s3result_backend_url):
    app = Celery("myapp", broker="memory://", backend=s3result_backend_url, set_as_current=False)

    @app.task(name="myapp.add")
    def add(x, y):
        return x + y

    return app


def test_a_task_runs_and_its_result_is_read_from_the_store(app):
    with start_worker(app, pool="solo", perform_ping_check=False):
        result = app.tasks["myapp.add"].delay(2, 3)
        assert result.get(timeout=10) == 5
    # The result is an object in the store: read again once the worker is gone.
    assert app.AsyncResult(result.id).state == "SUCCESS"
