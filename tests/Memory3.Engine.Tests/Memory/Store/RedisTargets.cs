using System.Net;
using System.Net.Sockets;
using Garnet;
using StackExchange.Redis;

namespace Memory3.Engine.Tests.Memory.Store;

/// <summary>
/// The Redis servers the Redis-tier tests run against: an embedded Garnet on a free port (always) and, when the
/// environment variable MEMORY3_TEST_REDIS (host:port) is set, that server too. One per test class (a class fixture).
/// </summary>
public sealed class RedisTargets : IDisposable
{
    public const string Garnet = "garnet", External = "external";
    public const string EnvVar = "MEMORY3_TEST_REDIS";

    private readonly GarnetServer _garnet;
    private readonly Dictionary<string, ConnectionMultiplexer> _muxes = new();

    public RedisTargets()
    {
        GarnetPort = FreePort();
        _garnet = StartGarnet(GarnetPort);
        _muxes[Garnet] = Connect($"127.0.0.1:{GarnetPort}");
        if (Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 } ext) _muxes[External] = Connect(ext);
    }

    public int GarnetPort { get; }

    /// <summary>The theory data: "garnet", plus "external" when MEMORY3_TEST_REDIS is set.</summary>
    public static TheoryData<string> All
    {
        get
        {
            var data = new TheoryData<string> { Garnet };
            if (Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 }) data.Add(External);
            return data;
        }
    }

    public ConnectionMultiplexer Mux(string target) => _muxes[target];

    public static GarnetServer StartGarnet(int port)
    {
        var server = new GarnetServer(["--port", port.ToString(), "--bind", "127.0.0.1", "--index", "1m", "--memory", "32m", "--page", "1m", "--no-obj"]);
        server.Start();
        return server;
    }

    public static ConnectionMultiplexer Connect(string endpoint, bool failFast = false)
    {
        var options = ConfigurationOptions.Parse(endpoint);
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 5000;
        options.SyncTimeout = 5000;
        options.AsyncTimeout = 5000;
        options.AllowAdmin = true;
        options.ConnectRetry = 3;
        if (failFast) options.BacklogPolicy = BacklogPolicy.FailFast;
        return ConnectionMultiplexer.Connect(options);
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public void Dispose()
    {
        foreach (var m in _muxes.Values) m.Dispose();
        _garnet.Dispose();
    }
}

/// <summary>A fact that runs only when MEMORY3_TEST_REDIS names a real Redis (it does what Garnet cannot, e.g. CLIENT PAUSE).</summary>
public sealed class ExternalRedisFactAttribute : FactAttribute
{
    public ExternalRedisFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(RedisTargets.EnvVar)))
            Skip = $"needs a real Redis: set {RedisTargets.EnvVar}=host:port";
    }
}
