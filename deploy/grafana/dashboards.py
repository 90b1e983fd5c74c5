# Generates deploy/grafana/dashboards/*.json: python3 deploy/grafana/dashboards.py deploy/grafana/dashboards
import json, sys
out = sys.argv[1]
RI = "$__rate_interval"
PROM = {"type": "prometheus", "uid": "prometheus"}
TEMPO = {"type": "tempo", "uid": "tempo"}

def explore_link(title, traceql):
    left = {"datasource": "tempo", "queries": [{"refId": "A", "datasource": TEMPO, "queryType": "traceql", "query": traceql, "limit": 20}], "range": {"from": "${__from}", "to": "${__to}"}}
    return {"title": title, "url": "/explore?left=" + json.dumps(left, separators=(",", ":")), "targetBlank": True}

class D:
    def __init__(s): s.panels = []; s.y = 0; s.x = 0; s.id = 1
    def add(s, p, w=12, h=8):
        if s.x + w > 24: s.x = 0; s.y += h
        p["id"] = s.id; s.id += 1
        p["gridPos"] = {"x": s.x, "y": s.y, "w": w, "h": h}
        s.x += w
        if s.x >= 24: s.x = 0; s.y += h
        s.panels.append(p)
    def row(s, title):
        if s.x: s.x = 0; s.y += 8
        s.panels.append({"type": "row", "title": title, "id": s.id, "collapsed": False, "gridPos": {"x": 0, "y": s.y, "w": 24, "h": 1}, "panels": []})
        s.id += 1; s.y += 1

def ts(title, targets, unit, desc="", links=None, stack=False):
    p = {"type": "timeseries", "title": title, "description": desc, "datasource": PROM,
         "fieldConfig": {"defaults": {"unit": unit, "custom": {"stacking": {"mode": "normal" if stack else "none"}}}, "overrides": []},
         "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]}, "tooltip": {"mode": "multi"}},
         "targets": [{"refId": chr(65 + i), "datasource": PROM, "expr": e, "legendFormat": l, "exemplar": True} for i, (e, l) in enumerate(targets)]}
    if links: p["links"] = links
    return p

def q(phi, metric, by="le"):
    return f"histogram_quantile({phi}, sum by ({by}) (rate({metric}_bucket[{RI}])))"

def traces(title, traceql, desc):
    return {"type": "table", "title": title, "description": desc, "datasource": TEMPO,
            "targets": [{"refId": "A", "datasource": TEMPO, "queryType": "traceql", "query": traceql, "limit": 20, "tableType": "traces"}],
            "options": {"sortBy": [{"displayName": "Duration", "desc": True}]}}

def dash(uid, title, d, desc):
    return {"uid": uid, "title": title, "description": desc, "tags": ["memory3"], "timezone": "browser", "schemaVersion": 39,
            "version": 1, "editable": True, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
            "annotations": {"list": []}, "templating": {"list": []},
            "links": [{"title": "Serving", "type": "link", "url": "/d/memory3-serving"}, {"title": "Memory", "type": "link", "url": "/d/memory3-memory"}],
            "panels": d.panels}

slow = explore_link("Slowest requests in Tempo", '{resource.service.name="memory3" && kind=server} | select(span.http.route)')

# ---- Serving ----
d = D()
d.row("Requests")
d.add(ts("Requests finished by reason / s", [(f"sum by (reason) (rate(memory3_requests_finished_total[{RI}]))", "{{reason}}")], "reqps",
         "memory3.requests.finished: stop, length, abort, error, rejected", stack=True))
d.add(ts("HTTP requests by status / s", [(f'sum by (http_route, http_response_status_code) (rate(http_server_request_duration_seconds_count{{http_route=~"/v1/.*"}}[{RI}]))', "{{http_response_status_code}} {{http_route}}")], "reqps",
         "ASP.NET Core http.server.request.duration, /v1 routes"))
d.add(ts("End-to-end latency", [(q(0.5, "memory3_request_e2e_latency_seconds"), "p50"), (q(0.99, "memory3_request_e2e_latency_seconds"), "p99")], "s",
         "Admission to last token. Panel link: the slowest traces in Tempo.", [slow]))
d.add(ts("HTTP request duration (/v1)", [(f'histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{{http_route=~"/v1/.*"}}[{RI}])))', "p99 {{http_route}}")], "s",
         "p99 per route, as the client sees it (streaming: until the stream ends).", [slow]))
d.row("Latency")
d.add(ts("Time to first token", [(q(0.5, "memory3_request_time_to_first_token_seconds"), "p50"), (q(0.99, "memory3_request_time_to_first_token_seconds"), "p99")], "s", links=[slow]))
d.add(ts("Inter-token latency", [(q(0.5, "memory3_request_inter_token_latency_seconds"), "p50"), (q(0.99, "memory3_request_inter_token_latency_seconds"), "p99")], "s", links=[slow]))
d.add(ts("Queue time", [(q(0.5, "memory3_request_queue_time_seconds"), "p50"), (q(0.99, "memory3_request_queue_time_seconds"), "p99")], "s",
         "Admission until the request's first engine step."))
d.add(ts("Engine step duration by phase (p99)", [(q(0.99, "memory3_step_duration_seconds", "le, phase"), "{{phase}}")], "s"))
d.row("Engine")
d.add(ts("Sequences", [("sum(memory3_sequences_running)", "running"), ("sum(memory3_sequences_waiting)", "waiting"), ("sum(memory3_kv_slots_free)", "free KV slots")], "short"))
d.add(ts("Tokens / s", [(f"sum(rate(memory3_tokens_generated_total[{RI}]))", "generated"), (f"sum(rate(memory3_tokens_prompt_total[{RI}]))", "prompt")], "short"))
d.add(ts("Batch tokens per step", [(q(0.5, "memory3_batch_tokens"), "p50"), (q(0.99, "memory3_batch_tokens"), "p99"),
                                   (f"sum(rate(memory3_batch_tokens_sum[{RI}])) / sum(rate(memory3_batch_tokens_count[{RI}]))", "mean")], "short"))
d.add(ts("Batch size (sequences per step) and steps / s", [(f"sum(rate(memory3_batch_size_sum[{RI}])) / sum(rate(memory3_batch_size_count[{RI}]))", "mean sequences / step"),
                                   (f"sum(rate(memory3_step_duration_seconds_count[{RI}]))", "steps / s")], "short"))
d.row("Traces")
d.add(traces("Slowest requests (Tempo)", '{resource.service.name="memory3" && kind=server && duration > 100ms}',
             "HTTP server spans of memory3 over 100 ms; open one for queue → prefill → decode → retrieve → fetch → dequantize."), w=24, h=10)
json.dump(dash("memory3-serving", "Memory3 / Serving", d, "Requests, latency (TTFT, ITL, e2e, queue), sequences, batches, tokens/s"), open(f"{out}/serving.json", "w"), indent=2)

# ---- Memory ----
d = D()
d.row("Retrieval")
d.add(ts("Memory refreshes / s", [(f"sum(rate(memory3_memory_refreshes_total[{RI}]))", "refreshes")], "short",
         "Retrievals attached to sequences (one per retrieval window of a memory-reading request)."))
d.add(ts("Lookups / s by tier", [(f"sum by (tier, hit) (rate(memory3_memory_lookups_total[{RI}]))", "{{tier}} hit={{hit}}")], "short",
         "Memories looked up per tier; a process miss goes to Redis (when configured), a Redis miss to disk."))
d.add(ts("Hit ratio by tier", [(f'sum by (tier) (rate(memory3_memory_lookups_total{{hit="true"}}[{RI}])) / sum by (tier) (rate(memory3_memory_lookups_total[{RI}]))', "{{tier}}")], "percentunit"))
d.add(ts("Fetch latency by tier (p50, p99)", [(q(0.5, "memory3_memory_fetch_duration_milliseconds", "le, tier"), "p50 {{tier}}"),
                                             (q(0.99, "memory3_memory_fetch_duration_milliseconds", "le, tier"), "p99 {{tier}}")], "ms",
         "One batched lookup in a tier. Panel link: the slowest retrieve spans in Tempo.", [explore_link("Slowest retrievals in Tempo", '{resource.service.name="memory3" && name="retrieve"}')]))
d.row("Bytes")
d.add(ts("Process tier bytes", [("sum(memory3_memory_process_bytes)", "decoded memories held in process")], "bytes",
         "Bounded by Memory3:Bank:ProcessCacheBytes."))
d.add(ts("Fetches / s by tier", [(f"sum by (tier) (rate(memory3_memory_fetch_duration_milliseconds_count[{RI}]))", "{{tier}}")], "short"))
d.row("Traces")
d.add(traces("Slowest retrievals (Tempo)", '{resource.service.name="memory3" && name="retrieve"}', "retrieve spans (children: fetch per tier, dequantize)"), w=24, h=10)
json.dump(dash("memory3-memory", "Memory3 / Memory", d, "Explicit memory: refreshes, per-tier hit ratio and fetch latency, bytes held in process"), open(f"{out}/memory.json", "w"), indent=2)
