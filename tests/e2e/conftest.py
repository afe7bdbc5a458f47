import pytest

from cluster import Cluster


@pytest.fixture
def cluster(tmp_path, request):
    c = Cluster(tmp_path)
    c.start_all()
    yield c
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(c.logs())
    c.stop_all()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
