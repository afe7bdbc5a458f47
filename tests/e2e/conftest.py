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


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory, request):
    """One 3-node cluster shared by every test of a module."""
    c = Cluster(tmp_path_factory.mktemp(request.module.__name__))
    c.start_all()
    yield c
    c.stop_all()


@pytest.fixture(scope="module")
def client(module_cluster):
    """A client of the module's cluster."""
    c = module_cluster.client(seed=1)
    yield c
    c.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
