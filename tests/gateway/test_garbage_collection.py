"""While the app serves, what start-up loaded is frozen out of the collector's scans and young
collections are rarer; when it stops, the collector is as it was before."""

import gc

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.garbage_collection import OLDER_THRESHOLDS, YOUNG_THRESHOLD
from gateway.settings import Settings
from tests.conftest import BASE_URL


def test_serving__start_up_objects_frozen_and_young_collections_rarer(
    settings: Settings, engine: Engine
) -> None:
    before = gc.get_threshold()
    app = create_app(settings, engine=engine)
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get("/fhir/metadata").status_code == 200
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
        # the app itself is among the frozen objects, in no generation a collection scans
        assert gc.get_freeze_count() > 0
        assert not any(obj is app for obj in gc.get_objects())

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
