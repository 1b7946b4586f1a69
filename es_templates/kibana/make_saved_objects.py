"""Regenerate polyseek.ndjson: Kibana data views, visualizations and dashboards for Polyseek.

Legacy aggregation-based visualizations (type "visualization") are used because their
field references are explicit and can be checked against es_templates/ in the tests.

Click-through rate per query language (clicks / searches) divides counts from two indices: the
feedback index (clicks, with the query's ``lang``) and the query log (searches, ``lang``).  Aggregation-
based charts and a Lens layer read one data view each, so it is a TSVB chart ("metrics" visualization;
imported by Kibana 8/9 and OpenSearch Dashboards alike, unlike Lens) over the data view
``polyseek-query-log*,polyseek-feedback*``: a ``filter_ratio`` of ``event:click`` (only feedback records
have ``event``) over ``not event:*`` (query-log records), split by the ``lang`` terms both indices share.
The data view is referenced the way Kibana 8 exports TSVB (``index_pattern_ref_name`` + a reference);
``index_pattern`` also carries its title for OpenSearch Dashboards, whose TSVB reads index strings only.
Rejected: Lens (Kibana-only, a version-bound format), Vega (no data view, so no field check here and no
filter bar), TSVB string mode alone (deprecated in Kibana 8, ``metrics:allowStringIndices``).
Run: python es_templates/kibana/make_saved_objects.py
"""

import json
import uuid
from pathlib import Path

OUT = Path(__file__).with_name("polyseek.ndjson")
# id -> (title, time field, the component templates of the indices it covers)
DATA_VIEWS = {
    "polyseek-dv-query-log": ("polyseek-query-log*", "@timestamp", ("query-log",)),
    "polyseek-dv-feedback": ("polyseek-feedback*", "@timestamp", ("feedback",)),
    "polyseek-dv-searches-and-feedback": ("polyseek-query-log*,polyseek-feedback*", "@timestamp",
                                          ("query-log", "feedback")),
    "polyseek-dv-dead-letter": ("polyseek-dead-letter*", "@timestamp", ("dead-letter",)),
    "polyseek-dv-ingest-status": ("polyseek-ingest-status*", "updated_at", ("ingest-status",)),
    "polyseek-dv-products": ("products*,*-products", None, ("products-text",)),
}


def data_view(obj_id, title, time_field, templates):
    attrs = {"title": title, "name": f"Polyseek {' and '.join(templates)}"}
    if time_field:
        attrs["timeFieldName"] = time_field
    # no migrationVersion: Kibana 8/9 and OpenSearch Dashboards (Kibana 7.10 format) both migrate on import
    return {"id": obj_id, "type": "index-pattern", "attributes": attrs, "references": []}


def vis(obj_id, title, vis_type, aggs, data_view_id, query=""):
    state = {"title": title, "type": vis_type, "aggs": aggs, "params": {"addLegend": True, "addTooltip": True}}
    search = {"query": {"query": query, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return {"id": obj_id, "type": "visualization",
            "attributes": {"title": title, "visState": json.dumps(state), "uiStateJSON": "{}", "description": "",
                           "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search)}},
            "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                            "id": data_view_id}]}


def tsvb_ratio(obj_id, title, data_view_id, numerator, denominator, split_field):
    """A TSVB line chart of count(numerator) / count(denominator) (KQL), one line per ``split_field`` term."""
    def uid(part):  # TSVB keys its panel, series and metrics by uuid; stable ones keep the file stable
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{obj_id}/{part}"))

    index_title, time_field, _ = DATA_VIEWS[data_view_id]
    kql = lambda q: {"query": q, "language": "kuery"}  # noqa: E731
    series = {"id": uid("series"), "color": "#54B399", "split_mode": "terms", "terms_field": split_field,
              "terms_size": "10", "terms_order_by": "_count", "split_color_mode": "kibana",
              "metrics": [{"id": uid("ratio"), "type": "filter_ratio", "metric_agg": "count",
                           "numerator": kql(numerator), "denominator": kql(denominator)}],
              "formatter": "percent", "chart_type": "line", "line_width": 1, "point_size": 1, "fill": 0,
              "stacked": "none", "separate_axis": 0, "axis_position": "right", "label": "",
              "override_index_pattern": 0, "series_drop_last_bucket": 0}
    params = {"id": uid("panel"), "type": "timeseries", "series": [series], "time_field": time_field,
              "index_pattern": index_title, "index_pattern_ref_name": "metrics_0_index_pattern",
              "use_kibana_indexes": True, "interval": "", "drop_last_bucket": 0, "axis_position": "left",
              "axis_formatter": "number", "axis_scale": "normal", "show_legend": 1, "show_grid": 1,
              "tooltip_mode": "show_all", "time_range_mode": "entire_time_range", "isModelInvalid": False}
    state = {"title": title, "type": "metrics", "aggs": [], "params": params}
    return {"id": obj_id, "type": "visualization",
            "attributes": {"title": title, "visState": json.dumps(state), "uiStateJSON": "{}", "description": "",
                           "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                               {"query": kql(""), "filter": []})}},
            "references": [{"name": "metrics_0_index_pattern", "type": "index-pattern", "id": data_view_id}]}


def agg(i, kind, schema, **params):
    return {"id": str(i), "enabled": True, "type": kind, "schema": schema, "params": params}


def over_time(field, i=2):
    return agg(i, "date_histogram", "segment", field=field, interval="auto", min_doc_count=1)


def dashboard(obj_id, title, panels):
    panel_json, refs = [], []
    for n, vid in enumerate(panels):
        panel_json.append({"panelIndex": str(n), "gridData": {"x": 24 * (n % 2), "y": 15 * (n // 2), "w": 24,
                                                              "h": 15, "i": str(n)},
                           "embeddableConfig": {}, "panelRefName": f"panel_{n}"})
        refs.append({"name": f"panel_{n}", "type": "visualization", "id": vid})
    return {"id": obj_id, "type": "dashboard",
            "attributes": {"title": title, "panelsJSON": json.dumps(panel_json), "timeRestore": False,
                           "optionsJSON": json.dumps({"useMargins": True}), "description": "",
                           "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
                               {"query": {"query": "", "language": "kuery"}, "filter": []})}},
            "references": refs}


def main() -> None:
    ql, dl, st = "polyseek-dv-query-log", "polyseek-dv-dead-letter", "polyseek-dv-ingest-status"
    fb = "polyseek-dv-feedback"
    stages = ["bm25", "knn", "sparse", "rrf", "linear", "rerank", "fetch"]
    search = [
        vis("polyseek-vis-queries-over-time", "Queries over time", "line",
            [agg(1, "count", "metric"), over_time("@timestamp")], ql),
        vis("polyseek-vis-zero-result-rate", "Zero-result rate", "line",
            [agg(1, "avg", "metric", field="zero_result_rate"), over_time("@timestamp")], ql),
        vis("polyseek-vis-latency", "Latency p50 / p95 (ms)", "line",
            [agg(1, "percentiles", "metric", field="took_ms", percents=[50, 95]), over_time("@timestamp")], ql),
        vis("polyseek-vis-stage-latency", "Latency per stage p50 / p95 (ms)", "table",
            [agg(i + 1, "percentiles", "metric", field=f"took_ms_by_stage.{s}", percents=[50, 95])
             for i, s in enumerate(stages)], ql),
        vis("polyseek-vis-language-mix", "Query languages", "pie",
            [agg(1, "count", "metric"), agg(2, "terms", "segment", field="lang", size=12)], ql),
        vis("polyseek-vis-top-queries", "Top queries", "table",
            [agg(1, "count", "metric"), agg(2, "terms", "bucket", field="query.keyword", size=20)], ql),
        vis("polyseek-vis-top-zero-result", "Top zero-result queries", "table",
            [agg(1, "count", "metric"), agg(2, "terms", "bucket", field="query.keyword", size=20)], ql,
            query="zero_result:true"),
        vis("polyseek-vis-rerank-lift", "Rerank lift (share of searches whose top hit the reranker changed)",
            "line", [agg(1, "avg", "metric", field="rerank_lift"), over_time("@timestamp")], ql,
            query="reranked:true"),
        vis("polyseek-vis-retrievers", "Retriever trees used", "pie",
            [agg(1, "count", "metric"), agg(2, "terms", "segment", field="retriever", size=10)], ql),
        tsvb_ratio("polyseek-vis-ctr-by-language", "Click-through rate per query language (clicks / searches)",
                   "polyseek-dv-searches-and-feedback", "event:click", "not event:*", "lang"),
        vis("polyseek-vis-clicks-by-lang-pair", "Clicks and orders by language pair (query -> product)",
            "histogram", [agg(1, "count", "metric"), over_time("@timestamp"),
                          agg(3, "terms", "group", field="lang_pair", size=12)], fb,
            query="event:click or event:order"),
        vis("polyseek-vis-lang-pair-events", "Language pairs: clicks, carts and orders", "table",
            [agg(1, "count", "metric"), agg(2, "terms", "bucket", field="lang_pair", size=30),
             agg(3, "terms", "bucket", field="event", size=4)], fb),
    ]
    ingest = [
        vis("polyseek-vis-docs-indexed", "Documents indexed over time", "histogram",
            [agg(1, "sum", "metric", field="indexed"), over_time("updated_at")], st),
        vis("polyseek-vis-docs-rejected", "Documents rejected over time", "histogram",
            [agg(1, "sum", "metric", field="rejected"), over_time("updated_at")], st),
        vis("polyseek-vis-dead-letters", "Dead letters by error type", "histogram",
            [agg(1, "count", "metric"), over_time("@timestamp"),
             agg(3, "terms", "group", field="error_type", size=10)], dl),
        vis("polyseek-vis-dead-letters-by-index", "Dead letters by index", "table",
            [agg(1, "count", "metric"), agg(2, "terms", "bucket", field="index", size=20)], dl),
    ]
    catalog_map = vis("polyseek-vis-catalog-map", "Catalog map: largest semantic-id clusters (level 1) with an "
                      "example title", "table",
                      [agg(1, "count", "metric"), agg(2, "terms", "bucket", field="semantic_id_l1", size=30),
                       agg(3, "terms", "bucket", field="title.raw", size=1)], "polyseek-dv-products")
    objects = [data_view(i, *v) for i, v in DATA_VIEWS.items()] + search + ingest + [catalog_map] + [
        dashboard("polyseek-dashboard-search", "Polyseek search analytics", [v["id"] for v in search]),
        dashboard("polyseek-dashboard-ingest", "Polyseek ingest", [v["id"] for v in ingest]),
        dashboard("polyseek-dashboard-catalog-map", "Polyseek catalog map (semantic ids)", [catalog_map["id"]]),
    ]
    OUT.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects))
    print(f"{len(objects)} saved objects -> {OUT}")


if __name__ == "__main__":
    main()
