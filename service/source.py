"""``_source`` as Elasticsearch answers it: the client's document as it was sent.

A products document is stored with Polyseek's derived fields beside the client's own (``id``,
``lang``, ``<field>_<lang>``, vectors, provenance, semantic ids: what searches read) and the
client's document as sent in the unindexed record ``polyseek.source``
(:data:`~pipelines.schema.SOURCE_NAMESPACE`).  Every ``_source`` the service answers
(GET, ``_source``, ``_mget``, ``_search`` and its scroll pages, ``_msearch``, inner hits,
``top_hits``) is the record's document, so the client reads back exactly what it wrote.

The client's ``_source`` filter (``_source``, ``_source_includes``, ``_source_excludes`` in the
URL, ``_source`` in a body) is sent to the engine rewritten onto the record
(``title`` -> ``polyseek.source.title``, plus the marker ``polyseek.v``), so the engine filters
with its own semantics; the same filter unprefixed serves documents without a record
(indices Polyseek does not write, documents written before the record existed).  The answer
alone then says how to read each hit (:func:`client_view`), scroll pages included.

The stored document (derived fields included) is answered, filtered as asked, when the request
names a vector field in its includes (``_source_includes=embedding,lang``, as Elasticsearch 9
answers an excluded vector that is explicitly included) or sets Elasticsearch 9's
``_source.exclude_vectors: false`` / ``_source_exclude_vectors=false``.  ``fields``,
``docvalue_fields`` and ``stored_fields`` read the index: a field named there (``lang``,
``model.dense``, ``semantic_id``, ...) is answered as the engine has it, while a wildcard
(``fields: ["*"]``, Kibana's Discover) answers only the client's own fields (:class:`FieldsRule`,
from the record's ``polyseek.keys``).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any

from pipelines.ingest.documents import kept_source
from pipelines.schema import KEYS_KEY, KEYS_PATH, MARK_PATH, SENT_PATH, SOURCE_NAMESPACE, VECTOR_FIELDS, product_fields
from service.errors import SearchError, bad_request

URL_PARAMS = ("_source", "_source_includes", "_source_excludes", "_source_exclude_vectors")
# engine answers that carry documents' _source (whole: the answer of GET /{index}/_source/{id} is one)
ANSWERS_WITH_SOURCE = re.compile(
    r".*/(_doc/[^/]+|_mget|_search(/scroll(/[^/]+)?|/template)?|_msearch(/template)?|_explain/[^/]+)")
WHOLE_SOURCE = re.compile(r"/[^/]+/_source/[^/]+")
SEARCH_PATH = re.compile(r"(/[^/]+)?/_search")
MGET_PATH = re.compile(r"(/[^/]+)?/_mget")


@dataclass
class SourceSpec:
    """A client's ``_source`` request: ``fetch`` true/false, include and exclude patterns, and
    Elasticsearch 9's ``exclude_vectors`` (None where the client said nothing)."""

    fetch: bool | None = None
    includes: list[str] | None = None
    excludes: list[str] | None = None
    exclude_vectors: bool | None = None

    @property
    def wants_stored(self) -> bool:
        """Whether the client asks for the stored document: ``exclude_vectors: false``, or an
        include that names a vector field (exactly, not through a wildcard; Elasticsearch 9 answers
        an excluded vector that is named so).  Other derived names (``model``, ``lang``, ...) may be
        the client's own fields: they stay filters of the document as sent."""
        if self.exclude_vectors is False:
            return True
        return any(p.split(".")[0] in VECTOR_FIELDS for p in self.includes or [])


def _patterns(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad_request(f"[_source] [{name}] must be a string or an array of strings", "x_content_parse_exception")


def from_body(value: Any) -> SourceSpec | None:
    """The filter of a body's ``_source`` value (bool, pattern(s) or object); None when absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return SourceSpec(fetch=value)
    if isinstance(value, (str, list)):
        return SourceSpec(includes=_patterns("includes", value))
    if not isinstance(value, dict):
        raise bad_request("[_source] must be a boolean, a string, an array or an object", "x_content_parse_exception")
    out = SourceSpec()
    for key, item in value.items():
        if key in ("includes", "include"):
            out.includes = _patterns(key, item)
        elif key in ("excludes", "exclude"):
            out.excludes = _patterns(key, item)
        elif key == "exclude_vectors" and isinstance(item, bool):
            out.exclude_vectors = item
        else:
            raise bad_request(f"[_source] unknown key [{key}]", "x_content_parse_exception")
    return out


def _bool(value: str) -> bool | None:
    return True if value in ("", "true") else False if value == "false" else None


def from_params(items: list[tuple[str, str]]) -> SourceSpec | None:
    """The filter of a request's URL parameters (``_source`` true/false or includes,
    ``_source_includes``, ``_source_excludes``, ``_source_exclude_vectors``); None when absent."""
    found = [(k, v) for k, v in items if k in URL_PARAMS]
    if not found:
        return None
    out = SourceSpec()
    for name, value in found:
        patterns = [p for p in value.split(",") if p]
        if name == "_source":
            flag = _bool(value)
            if flag is None:
                out.includes = patterns
            else:
                out.fetch = flag
        elif name == "_source_includes":
            out.includes = patterns
        elif name == "_source_excludes":
            out.excludes = patterns
        else:
            out.exclude_vectors = _bool(value) is not False
    return out


@dataclass
class FieldsRule:
    """How to answer the ``fields`` of hits when a request's ``fields``/``docvalue_fields`` hold a
    wildcard: a field whose top-level name Polyseek derived, and the client did not send, is dropped
    unless it is named exactly.  ``source_off``: ``_source`` was fetched only to read the record's
    field names (the client asked for none)."""

    explicit: frozenset[str]
    source_off: bool = False

    def filter(self, fields: dict[str, Any], sent_keys: set[str]) -> dict[str, Any]:
        """``fields`` of one hit without what the wildcard matched among the derived fields."""
        return {k: v for k, v in fields.items() if k in self.explicit or k.split(".")[0] not in product_fields().derived_roots
                or k.split(".")[0] in sent_keys}


def _field_names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    names = [i.get("field") if isinstance(i, dict) else i for i in items]
    return [n for n in names if isinstance(n, str)]


def fields_rule(body: dict[str, Any]) -> FieldsRule | None:
    """The :class:`FieldsRule` of a search body (None when its ``fields``/``docvalue_fields`` name
    fields without a wildcard, or there are none)."""
    names = _field_names(body.get("fields")) + _field_names(body.get("docvalue_fields"))
    if not any("*" in n for n in names):
        return None
    return FieldsRule(explicit=frozenset(n for n in names if "*" not in n), source_off=body.get("_source") is False)


def with_keys(body: dict[str, Any], rule: FieldsRule | None) -> dict[str, Any]:
    """An engine search body that also fetches the record's field names when ``rule`` needs them."""
    if rule is None:
        return body
    value = body.get("_source", True)
    if value is False:
        return {**body, "_source": {"includes": [KEYS_PATH]}}
    if isinstance(value, dict) and value.get("includes"):
        return {**body, "_source": {**value, "includes": [*value["includes"], KEYS_PATH]}}
    return body  # the whole record is fetched


def _may_match_namespace(pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for path in (SOURCE_NAMESPACE, MARK_PATH, SENT_PATH))


def for_engine(flt: SourceSpec) -> SourceSpec:
    """The filter to send to the engine for a client's filter (see the module's docstring)."""
    if flt.wants_stored:
        includes = flt.includes
        if includes is None and flt.exclude_vectors is False:
            # the whole stored document, vectors named: Elasticsearch 9 leaves vectors out of `_source`
            # unless included by name (OpenSearch has no `exclude_vectors` to forward and answers them anyway)
            includes = ["*", *VECTOR_FIELDS]
        named = any(p.split(".")[0] == SOURCE_NAMESPACE for p in includes or [])
        excludes = [*(flt.excludes or []), *([] if named else [SOURCE_NAMESPACE])]
        return SourceSpec(fetch=flt.fetch, includes=includes, excludes=excludes)
    if flt.fetch is False:
        return SourceSpec(fetch=False)
    includes = None
    if flt.includes:
        includes = [*flt.includes, *(f"{SENT_PATH}.{p}" for p in flt.includes), MARK_PATH]
    excludes = None
    if flt.excludes:
        excludes = [*(f"{SENT_PATH}.{p}" for p in flt.excludes),
                    *(p for p in flt.excludes if not _may_match_namespace(p))]
    return SourceSpec(fetch=flt.fetch, includes=includes, excludes=excludes)


def body_value(flt: SourceSpec) -> Any:
    """A filter as a body's ``_source`` value."""
    if flt.fetch is False:
        return False
    out = {**({"includes": flt.includes} if flt.includes else {}),
           **({"excludes": flt.excludes} if flt.excludes else {}),
           **({"exclude_vectors": flt.exclude_vectors} if flt.exclude_vectors is not None else {})}
    return out or True


def url_params(flt: SourceSpec) -> list[tuple[str, str]]:
    """A filter as URL parameters."""
    if flt.fetch is False:
        return [("_source", "false")]
    out = [("_source_includes", ",".join(flt.includes))] if flt.includes else []
    out += [("_source_excludes", ",".join(flt.excludes))] if flt.excludes else []
    return out or [("_source", "true")]


def engine_body_value(value: Any) -> Any:
    """A client body's ``_source`` value rewritten for the engine (absent stays absent)."""
    flt = from_body(value)
    return None if flt is None else body_value(for_engine(flt))


def carries_source(path: str) -> bool:
    """Whether the engine's answer to ``path`` carries documents' ``_source``."""
    return WHOLE_SOURCE.fullmatch(path) is not None or ANSWERS_WITH_SOURCE.fullmatch(path) is not None


def fetch_value(value: Any) -> Any:
    """The engine ``_source`` of a service-run fetch for a client's body value (None: not given):
    :func:`engine_body_value`, with the vectors left out where the whole document is fetched."""
    engine = True if value is None else engine_body_value(value)
    return {"excludes": list(VECTOR_FIELDS)} if engine is True else engine


def engine_url_params(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A request's URL parameters with its ``_source`` ones rewritten for the engine."""
    flt = from_params(items)
    rest = [(k, v) for k, v in items if k not in URL_PARAMS]
    return rest if flt is None else rest + url_params(for_engine(flt))


def search_body(body: dict[str, Any]) -> dict[str, Any]:
    """A search body with every ``_source`` filter rewritten for the engine: the top level,
    ``collapse.inner_hits`` and ``top_hits`` aggregations (URL parameters: :func:`engine_url_params`),
    and the record's field names fetched for a wildcard ``fields`` (:func:`fields_rule`)."""
    out = with_keys(_with_source(dict(body)), fields_rule(body))
    collapse = out.get("collapse")
    if isinstance(collapse, dict) and collapse.get("inner_hits") is not None:
        inner = collapse["inner_hits"]
        rewritten = [_with_source(i) for i in (inner if isinstance(inner, list) else [inner])]
        out["collapse"] = {**collapse, "inner_hits": rewritten if isinstance(inner, list) else rewritten[0]}
    for key in ("aggs", "aggregations"):
        if isinstance(out.get(key), dict):
            out[key] = engine_aggs(out[key])
    return out


def _with_source(spec: Any) -> Any:
    """An object holding a ``_source`` filter (inner hits, ``top_hits``, an ``_mget`` doc) with it
    rewritten; a malformed filter goes as it came, for the engine's own error."""
    if not isinstance(spec, dict) or "_source" not in spec:
        return spec
    try:
        return {**spec, "_source": engine_body_value(spec["_source"])}
    except SearchError:
        return spec


def engine_aggs(aggs: dict[str, Any]) -> dict[str, Any]:
    """Aggregations with the ``_source`` filters of their ``top_hits`` rewritten for the engine."""
    out = {}
    for name, agg in aggs.items():
        if isinstance(agg, dict):
            agg = dict(agg)
            if isinstance(agg.get("top_hits"), dict):
                agg["top_hits"] = _with_source(agg["top_hits"])
            for key in ("aggs", "aggregations"):
                if isinstance(agg.get(key), dict):
                    agg[key] = engine_aggs(agg[key])
        out[name] = agg
    return out


def client_view(stored: dict[str, Any]) -> dict[str, Any]:
    """The ``_source`` to answer for one the engine returned: the client's document from the
    record when the answer holds it, else the engine's ``_source`` as it is."""
    kept = kept_source(stored)
    return stored if kept is None else kept


def hide(data: Any, rule: FieldsRule | None = None) -> Any:
    """``data`` (an engine answer) with every ``_source`` object replaced by its :func:`client_view`;
    under ``rule`` (the request's own), its hits' ``fields`` answered as :class:`FieldsRule` says."""
    if rule is not None and isinstance(data, dict) and isinstance(data.get("hits"), dict):
        for hit in data["hits"].get("hits") or []:
            _apply_rule(hit, rule)
    return _hide_sources(data)


def _apply_rule(hit: dict[str, Any], rule: FieldsRule) -> None:
    record = (hit.get("_source") or {}).get(SOURCE_NAMESPACE)
    if isinstance(hit.get("fields"), dict) and isinstance(record, dict) and isinstance(record.get(KEYS_KEY), list):
        hit["fields"] = rule.filter(hit["fields"], set(record[KEYS_KEY]))
    if rule.source_off:
        hit.pop("_source", None)


def _hide_sources(data: Any) -> Any:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "_source" and isinstance(value, dict):
                data[key] = client_view(value)
            else:
                _hide_sources(value)
    elif isinstance(data, list):
        for value in data:
            _hide_sources(value)
    return data


def _mget_body(body: dict[str, Any]) -> dict[str, Any]:
    docs = body.get("docs")
    if not isinstance(docs, list):
        return body
    return {**body, "docs": [_with_source(d) for d in docs]}


@dataclass
class Relay:
    """A passed-through request as the service sends it to the engine, and the rule for the
    ``fields`` of its answer."""

    content: bytes
    params: list[tuple[str, str]]
    fields: FieldsRule | None = None


def relay(path: str, content: bytes, params: list[tuple[str, str]]) -> Relay:
    """A passed-through request with its ``_source`` filters rewritten for the engine: URL parameters
    (:func:`engine_url_params`) and a ``_search`` or ``_mget`` body (other bodies, and ones that are
    not a JSON object, go as they came: the engine answers them)."""
    out = Relay(content, engine_url_params(params))
    search = SEARCH_PATH.fullmatch(path) is not None
    if not content.strip() or not (search or MGET_PATH.fullmatch(path)):
        return out
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return out
    if not isinstance(body, dict):
        return out
    if search:
        out.fields = fields_rule(body)
        body = search_body(body)
    else:
        body = _mget_body(body)
    out.content = json.dumps(body).encode("ascii")  # escapes keep any lone surrogate a client sent
    return out


def hide_answer(path: str, content: bytes, rule: FieldsRule | None = None) -> Any | None:
    """An engine answer to ``path`` (JSON) with the client's documents in place of the stored ones
    (and ``fields`` under ``rule``); None when it needs no change (no record in it, or not an answer
    that carries ``_source``)."""
    whole = WHOLE_SOURCE.fullmatch(path) is not None
    holds_record = f'"{SOURCE_NAMESPACE}"'.encode() in content
    if not carries_source(path) or not (holds_record or (rule is not None and rule.source_off)):
        return None
    try:
        data = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return client_view(data) if whole and isinstance(data, dict) else hide(data, rule)
