"""The lab every test here shares: hosts a, b (the GPU hosts, linked by kv0) and p (the proxy
node) in network namespaces, each with its own sshd. Built once for the package: each test sets
the link's rate (or state) it needs and puts back what it took down."""

from __future__ import annotations

import pytest

from tests.support.netns import Lab, remove_leftovers, skip_without_netns


@pytest.fixture(scope="package")
def netns_lab(tmp_path_factory):
    skip_without_netns()
    remove_leftovers()
    lab = Lab(tmp_path_factory.mktemp("lab"))
    yield lab
    lab.remove()
