using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using YamlDotNet.RepresentationModel;

namespace Memory3.Server.Tests;

/// <summary>deploy/: every file parses; kustomizations name files that exist.</summary>
public class DeployFileTests
{
    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Memory3.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("no Memory3.sln above " + AppContext.BaseDirectory);
    }

    internal static string Deploy => Path.Combine(RepoRoot(), "deploy");

    private static List<YamlDocument> LoadYaml(string path)
    {
        var stream = new YamlStream();
        using var reader = new StringReader(File.ReadAllText(path));
        stream.Load(reader);
        return stream.Documents.ToList();
    }

    [Fact]
    public void Every_yaml_and_json_file_under_deploy_parses()
    {
        var yaml = Directory.EnumerateFiles(Deploy, "*.y*ml", SearchOption.AllDirectories).ToList();
        var json = Directory.EnumerateFiles(Deploy, "*.json", SearchOption.AllDirectories).ToList();
        Assert.True(yaml.Count >= 20, $"{yaml.Count} YAML files");
        Assert.True(json.Count >= 2, $"{json.Count} JSON files");
        foreach (var f in yaml)
        {
            var docs = LoadYaml(f);
            Assert.True(docs.Count > 0 && docs.All(d => d.RootNode is YamlMappingNode), $"{f}: not a YAML mapping");
        }
        foreach (var f in json) JsonDocument.Parse(File.ReadAllText(f)).Dispose();
    }

    [Fact]
    public void Compose_has_the_stack_and_redis_is_a_cache()
    {
        var root = (YamlMappingNode)LoadYaml(Path.Combine(Deploy, "docker-compose.yml"))[0].RootNode;
        var services = (YamlMappingNode)root["services"];
        foreach (var s in new[] { "server", "redis", "otel-collector", "tempo", "prometheus", "grafana" })
            Assert.True(services.Children.ContainsKey(s), $"compose has no service {s}");
        var redisCmd = string.Join(' ', ((YamlSequenceNode)((YamlMappingNode)services["redis"])["command"]).Select(n => n.ToString()));
        Assert.Contains("--maxmemory ", redisCmd);
        Assert.Contains("allkeys-lru", redisCmd);
        // Every file the stack mounts from deploy/ exists.
        foreach (var (_, svc) in services.Children)
            if (((YamlMappingNode)svc).Children.TryGetValue("volumes", out var vols))
                foreach (var v in (YamlSequenceNode)vols)
                {
                    var src = v.ToString().Split(':')[0];
                    if (src.StartsWith("./")) Assert.True(Path.Exists(Path.Combine(Deploy, src)), $"compose mounts missing {src}");
                }
    }

    [Fact]
    public void Kustomizations_name_files_that_exist_and_the_server_is_probed()
    {
        var ks = Directory.EnumerateFiles(Path.Combine(Deploy, "k8s"), "kustomization.yaml", SearchOption.AllDirectories).ToList();
        Assert.Equal(3, ks.Count);
        foreach (var k in ks)
        {
            var root = (YamlMappingNode)LoadYaml(k)[0].RootNode;
            var dir = Path.GetDirectoryName(k)!;
            var names = new List<string>();
            if (root.Children.TryGetValue("resources", out var r)) names.AddRange(((YamlSequenceNode)r).Select(n => n.ToString()));
            if (root.Children.TryGetValue("patches", out var p)) names.AddRange(((YamlSequenceNode)p).Select(n => ((YamlMappingNode)n)["path"].ToString()));
            foreach (var n in names) Assert.True(Path.Exists(Path.Combine(dir, n)), $"{k}: {n} does not exist");
        }
        var deployment = File.ReadAllText(Path.Combine(Deploy, "k8s/base/deployment.yaml"));
        Assert.Contains("path: /ready", deployment);
        Assert.Contains("path: /health", deployment);
        Assert.Contains("nvidia.com/gpu: 1", File.ReadAllText(Path.Combine(Deploy, "k8s/overlays/gpu/deployment-gpu.yaml")));
        var job = File.ReadAllText(Path.Combine(Deploy, "k8s/base/ingest-job.yaml"));
        Assert.Contains("completionMode: Indexed", job);
        // The ConfigMap's appsettings is valid JSON.
        var cm = (YamlMappingNode)LoadYaml(Path.Combine(Deploy, "k8s/base/configmap.yaml"))[0].RootNode;
        var appsettings = ((YamlMappingNode)cm["data"])["appsettings.Production.json"].ToString();
        var bank = JsonNode.Parse(appsettings)!["Memory3"]!["Bank"]!;
        string bankPath = (string)bank["Path"]!;

        // Serving pods open the bank on the shard volume itself, read-only (no per-pod copy), and refresh it; every Job
        // index writes that same bank as its own writer.
        Assert.True((bool)bank["ReadOnly"]!);
        Assert.True((double)bank["RefreshSeconds"]! > 0);
        var pod = (YamlMappingNode)((YamlMappingNode)((YamlMappingNode)((YamlMappingNode)LoadYaml(Path.Combine(Deploy, "k8s/base/deployment.yaml"))[0].RootNode)["spec"])["template"])["spec"];
        Assert.False(pod.Children.ContainsKey("initContainers"));
        Assert.DoesNotContain("emptyDir", deployment);
        var server = (YamlMappingNode)((YamlSequenceNode)pod["containers"])[0];
        var shardMount = ((YamlSequenceNode)server["volumeMounts"]).Cast<YamlMappingNode>().Single(m => m["name"].ToString() == "shards");
        Assert.Equal("true", shardMount["readOnly"].ToString());
        Assert.StartsWith(shardMount["mountPath"].ToString() + "/", bankPath);
        var shardVolume = ((YamlSequenceNode)pod["volumes"]).Cast<YamlMappingNode>().Single(v => v["name"].ToString() == "shards");
        Assert.Equal("true", ((YamlMappingNode)shardVolume["persistentVolumeClaim"])["readOnly"].ToString());
        foreach (var f in new[] { "k8s/base/ingest-job.yaml", "k8s/overlays/gpu/ingest-job-gpu.yaml" })
        {
            var text = File.ReadAllText(Path.Combine(Deploy, f));
            Assert.Contains($"--bank {bankPath} --writer-id ${{JOB_COMPLETION_INDEX}}", text);
        }
    }
}

/// <summary>A server with a temp bank (hashing embedder) exporting OTLP/HTTP to a loopback receiver.</summary>
public sealed class TelemetryServerFixture : IAsyncLifetime
{
    public string BankDir { get; } = Path.Combine(Path.GetTempPath(), "m3-telemetry-" + Guid.NewGuid().ToString("N"));
    public OtlpReceiver Receiver { get; } = new();
    public ServerFactory Factory { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Factory = new ServerFactory(new()
        {
            ["Memory3:Bank:Path"] = BankDir,
            ["Memory3:Bank:Embedder"] = "hashing",
            ["Memory3:Telemetry:OtlpEndpoint"] = Receiver.Url,
            ["Memory3:Telemetry:OtlpProtocol"] = "http/protobuf",
        }, null);
        Client = await Factory.ReadyClientAsync();
        // Ingest, then one chat long enough to refresh its memories while decoding.
        var job = JsonNode.Parse(await Ok(await Client.PostAsync("/v1/memories", Json(
            """{"texts":["The Eiffel Tower in Paris is 330 metres tall and was finished in 1889.","Zorblax crystals glow blue when cooled below minus forty degrees.","The Memory3 model stores references as sparse quantized key-values."]}"""))))!;
        for (int i = 0; ; i++)
        {
            var j = JsonNode.Parse(await Ok(await Client.GetAsync($"/v1/memories/jobs/{job["id"]}")))!;
            if ((string?)j["status"] == "succeeded") break;
            Assert.True((string?)j["status"] != "failed" && i < 600, j.ToJsonString());
            await Task.Delay(50);
        }
        var chat = JsonNode.Parse(await Ok(await Client.PostAsync("/v1/chat/completions", Json(
            """{"model":"tiny-random","messages":[{"role":"user","content":"How tall is the Eiffel Tower?"}],"max_tokens":80,"temperature":0}"""))))!;
        Assert.True((int)chat["memory"]!["usage"]!["memory_refreshes"]! > 0, chat.ToJsonString());
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task<string> Ok(HttpResponseMessage r)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{r.StatusCode}: {text}");
        return text;
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Factory.DisposeAsync();
        Receiver.Dispose();
        try { Directory.Delete(BankDir, true); } catch (IOException) { }
    }
}

/// <summary>Accepts OTLP/HTTP posts on loopback and keeps each (path, body).</summary>
public sealed class OtlpReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly List<(string Path, byte[] Body)> _posts = [];
    public string Url { get; }

    public OtlpReceiver()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Url = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _ = Task.Run(LoopAsync);
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); } catch (Exception) { return; }
            using var ms = new MemoryStream();
            await ctx.Request.InputStream.CopyToAsync(ms);
            lock (_posts) _posts.Add((ctx.Request.Url!.AbsolutePath, ms.ToArray()));
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/x-protobuf";
            ctx.Response.Close();
        }
    }

    public (string Path, byte[] Body)[] Posts { get { lock (_posts) return _posts.ToArray(); } }

    public void Dispose() => _listener.Close();
}

public class TelemetryExportTests(TelemetryServerFixture fx) : IClassFixture<TelemetryServerFixture>
{
    private static readonly HashSet<string> PromQlWords =
    [
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan",
    ];

    /// <summary>Metric names in a PromQL expression: strings, label matchers, ranges, grouping clauses and function calls removed.</summary>
    internal static IEnumerable<string> MetricNames(string expr)
    {
        var s = Regex.Replace(expr, "\"(?:[^\"\\\\]|\\\\.)*\"", "\"\"");
        s = Regex.Replace(s, @"\{[^}]*\}", " ");
        s = Regex.Replace(s, @"\[[^\]]*\]", " ");
        s = Regex.Replace(s, @"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ");
        foreach (Match m in Regex.Matches(s, @"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()"))
        {
            var name = m.Groups[1].Value;
            if (!PromQlWords.Contains(name.ToLowerInvariant())) yield return name;
        }
    }

    private static IEnumerable<string> Exprs(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o)
                {
                    if (k == "expr" && v is JsonValue val) yield return val.GetValue<string>();
                    else foreach (var e in Exprs(v)) yield return e;
                }
                break;
            case JsonArray a:
                foreach (var v in a) foreach (var e in Exprs(v)) yield return e;
                break;
        }
    }

    [Fact]
    public void MetricNames_parses_promql()
    {
        Assert.Equal(["memory3_memory_lookups_total", "memory3_memory_lookups_total"],
            MetricNames("sum by (tier) (rate(memory3_memory_lookups_total{hit=\"true\"}[$__rate_interval])) / sum by (tier) (rate(memory3_memory_lookups_total[5m]))"));
        Assert.Equal(["memory3_batch_tokens_bucket"], MetricNames("histogram_quantile(0.99, sum by (le) (rate(memory3_batch_tokens_bucket[1m])))"));
    }

    [Fact]
    public async Task Every_metric_a_dashboard_queries_is_exported()
    {
        var dashboards = Directory.EnumerateFiles(Path.Combine(DeployFileTests.Deploy, "grafana", "dashboards"), "*.json").ToList();
        Assert.NotEmpty(dashboards);
        var wanted = new Dictionary<string, string>();
        foreach (var d in dashboards)
        {
            var exprs = Exprs(JsonNode.Parse(File.ReadAllText(d))).ToList();
            Assert.True(exprs.Count >= 5, $"{d}: {exprs.Count} expressions");
            foreach (var e in exprs)
            {
                var names = MetricNames(e).ToList();
                Assert.True(names.Count > 0, $"{Path.GetFileName(d)}: no metric in '{e}'");
                foreach (var n in names) wanted.TryAdd(n, $"{Path.GetFileName(d)}: {e}");
            }
        }
        HashSet<string> exported = [];
        string[] missing = [];
        for (int i = 0; i < 50; i++)
        {
            var text = await fx.Client.GetStringAsync("/metrics");
            exported = text.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => Regex.Match(l, @"^[a-zA-Z_:][a-zA-Z0-9_:]*").Value).ToHashSet();
            missing = wanted.Keys.Where(n => !exported.Contains(n)).ToArray();
            if (missing.Length == 0) break;
            await Task.Delay(100);
        }
        Assert.True(missing.Length == 0, "not in /metrics: " + string.Join("; ", missing.Select(m => $"{m} ({wanted[m]})")));
        Assert.Contains(wanted.Keys, n => n.StartsWith("memory3_memory_"));
    }

    [Fact]
    public async Task Otlp_http_export_carries_the_request_and_retrieval_spans()
    {
        var tracer = fx.Factory.Services.GetRequiredService<TracerProvider>();
        string[] spans = ["queue", "prefill", "decode", "engine.step", "retrieve", "fetch", "/v1/chat/completions"];
        string[] missing = spans;
        for (int i = 0; i < 100 && missing.Length > 0; i++)
        {
            tracer.ForceFlush(5000);
            var traces = fx.Receiver.Posts.Where(p => p.Path == "/v1/traces").SelectMany(p => p.Body).ToArray();
            missing = spans.Where(s => IndexOf(traces, Encoding.UTF8.GetBytes(s)) < 0).ToArray();
            if (missing.Length > 0) await Task.Delay(100);
        }
        Assert.True(missing.Length == 0, $"spans not exported over OTLP/HTTP: {string.Join(", ", missing)}; posts: " +
            string.Join(", ", fx.Receiver.Posts.Select(p => $"{p.Path} {p.Body.Length}B")));
        Assert.Contains(fx.Receiver.Posts, p => p.Body.Length > 0 && IndexOf(p.Body, "memory3"u8.ToArray()) >= 0);
    }

    private static int IndexOf(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle);
}
