"""soar's estimate of Elasticsearch's ``max_determinized_states`` refusal agrees with Elasticsearch.

Each pattern is sent as soar sends a ``|re`` (wrapped in ``.*( … ).*``) to a real index: Elasticsearch
refuses it exactly when :func:`soar.detection._regex.determinization_refusal` does. The boundaries
(``x{315}``, ``a.{12}b``...) are where Lucene's effort passes 100,000.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from soar.detection._backends import search_regex
from soar.detection._regex import determinization_refusal

PATTERNS = [
    "x{310}",
    "x{315}",
    "a.{11}b",
    "a.{12}b",
    "a[ab]{11}",
    "a[ab]{12}",
    ".{1,221}x",
    ".{1,222}x",
    "([^/]+/[^/]+/[^/]+){20}",
    "[a-z0-9]{8}(-[a-z0-9]{4}){3}-[a-z0-9]{12}",
    r"(\d+\.){3}\d+",
    "curl.*\\|.*sh",
    "[a-z]+[0-9]{400}[a-z]+",
    "^(a+)+$",
]


@pytest.fixture
def keyword_index(es: Elasticsearch, es_index: str) -> Iterator[str]:
    es.indices.create(index=es_index, mappings={"properties": {"f": {"type": "keyword"}}})
    yield es_index


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_estimate_agrees_with_elasticsearch(es: Elasticsearch, keyword_index: str, pattern: str) -> None:
    sent = search_regex(pattern)
    try:
        es.search(index=keyword_index, query={"regexp": {"f": {"value": sent, "flags": "ALL"}}})
        refused_by_es = False
    except BadRequestError as exc:
        assert "Determinizing automaton" in str(exc), exc
        refused_by_es = True
    assert (determinization_refusal(sent) is not None) == refused_by_es
