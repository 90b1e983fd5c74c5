using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Win32.SafeHandles;

namespace Memory3.Engine.Model;

/// <summary>Element types a safetensors file may hold that this engine reads.</summary>
public enum StDType { F32, BF16, F16 }

public static class StDTypes
{
    public static int Size(this StDType t) => t == StDType.F32 ? 4 : 2;
    public static string Name(this StDType t) => t.ToString();
    public static StDType? Parse(string s) => s switch { "F32" => StDType.F32, "BF16" => StDType.BF16, "F16" => StDType.F16, _ => null };
}

/// <summary>One tensor's entry in a safetensors header: where its bytes lie in which file.</summary>
public sealed record StTensorInfo(string Name, StDType DType, long[] Shape, string File, long Offset, long Length)
{
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Reads safetensors files (single or sharded through <c>model.safetensors.index.json</c>) with positioned reads
/// straight into the caller's destination memory: no memory map and no second copy of the weights, so peak RSS
/// stays at the model's own size plus one small conversion buffer.
/// </summary>
public sealed class SafeTensorsCheckpoint : IDisposable
{
    private readonly Dictionary<string, StTensorInfo> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, StTensorInfo> Tensors => _tensors;

    private SafeTensorsCheckpoint() { }

    /// <summary>Opens every safetensors file of a model directory.</summary>
    public static SafeTensorsCheckpoint Open(string modelDir)
    {
        var ck = new SafeTensorsCheckpoint();
        try
        {
            var index = Path.Combine(modelDir, "model.safetensors.index.json");
            var single = Path.Combine(modelDir, "model.safetensors");
            List<string> files;
            if (File.Exists(index)) files = ReadIndex(index, modelDir);
            else if (File.Exists(single)) files = [single];
            else
            {
                files = Directory.Exists(modelDir) ? Directory.GetFiles(modelDir, "*.safetensors").Order(StringComparer.Ordinal).ToList() : [];
                if (files.Count == 0) throw new ModelLoadException($"{modelDir}: no model.safetensors, model.safetensors.index.json or *.safetensors file");
            }
            foreach (var f in files) ck.AddFile(f);
            return ck;
        }
        catch
        {
            ck.Dispose();
            throw;
        }
    }

    private static List<string> ReadIndex(string index, string dir)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(index)); }
        catch (JsonException e) { throw new ModelLoadException($"{index}: malformed JSON ({e.Message})", e); }
        if (root?["weight_map"] is not JsonObject map) throw new ModelLoadException($"{index}: key 'weight_map' is missing or not an object");
        var files = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (name, file) in map)
        {
            var f = file is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new ModelLoadException($"{index}: weight_map['{name}'] is not a file name");
            if (f.Contains('/') || f.Contains('\\')) throw new ModelLoadException($"{index}: weight_map['{name}'] = '{f}' must be a file name in the model directory");
            var p = Path.Combine(dir, f);
            if (!File.Exists(p)) throw new ModelLoadException($"{p}: missing (named by {Path.GetFileName(index)} for '{name}')");
            files.Add(p);
        }
        return files.ToList();
    }

    private void AddFile(string path)
    {
        var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        _handles[path] = h;
        long fileLength = RandomAccess.GetLength(h);
        Span<byte> lenBytes = stackalloc byte[8];
        if (fileLength < 8 || RandomAccess.Read(h, lenBytes, 0) != 8) throw new ModelLoadException($"{path}: truncated safetensors file (no header)");
        long headerLen = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (headerLen <= 0 || headerLen > 100_000_000 || 8 + headerLen > fileLength)
            throw new ModelLoadException($"{path}: truncated or corrupt safetensors file (header length {headerLen}, file length {fileLength})");
        var header = new byte[headerLen];
        if (RandomAccess.Read(h, header, 8) != headerLen) throw new ModelLoadException($"{path}: truncated safetensors header");
        JsonObject obj;
        try { obj = JsonNode.Parse(header) as JsonObject ?? throw new ModelLoadException($"{path}: safetensors header is not a JSON object"); }
        catch (JsonException e) { throw new ModelLoadException($"{path}: malformed safetensors header ({e.Message})", e); }
        long dataStart = 8 + headerLen;
        foreach (var (name, node) in obj)
        {
            if (name == "__metadata__") continue;
            if (node is not JsonObject t) throw new ModelLoadException($"{path}: tensor '{name}' has no header entry object");
            var dtypeStr = t["dtype"]?.GetValue<string>() ?? throw new ModelLoadException($"{path}: tensor '{name}' has no dtype");
            var dtype = StDTypes.Parse(dtypeStr) ?? throw new ModelLoadException($"{path}: tensor '{name}' has dtype {dtypeStr}; only F32, BF16 and F16 are supported");
            var shape = (t["shape"] as JsonArray ?? throw new ModelLoadException($"{path}: tensor '{name}' has no shape")).Select(n => n!.GetValue<long>()).ToArray();
            var offs = t["data_offsets"] as JsonArray ?? throw new ModelLoadException($"{path}: tensor '{name}' has no data_offsets");
            long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
            var info = new StTensorInfo(name, dtype, shape, path, dataStart + begin, end - begin);
            if (info.Length != info.NumElements * dtype.Size() || begin < 0)
                throw new ModelLoadException($"{path}: tensor '{name}' has {info.Length} bytes for shape [{string.Join(", ", shape)}] {dtypeStr}");
            if (dataStart + end > fileLength)
                throw new ModelLoadException($"{path}: truncated safetensors file: tensor '{name}' ends at byte {dataStart + end} but the file has {fileLength}");
            if (!_tensors.TryAdd(name, info)) throw new ModelLoadException($"{path}: tensor '{name}' appears in more than one file");
        }
    }

    /// <summary>Reads a tensor into <paramref name="dest"/>, converting to <paramref name="destType"/> (F32 or BF16).</summary>
    public unsafe void ReadInto(StTensorInfo info, byte* dest, StDType destType)
    {
        var h = _handles[info.File];
        if (info.DType == destType)
        {
            // Straight into the destination: the weights exist once.
            long done = 0;
            while (done < info.Length)
            {
                int n = (int)Math.Min(info.Length - done, 1 << 30);
                int got = RandomAccess.Read(h, new Span<byte>(dest + done, n), info.Offset + done);
                if (got <= 0) throw new ModelLoadException($"{info.File}: truncated while reading tensor '{info.Name}'");
                done += got;
            }
            return;
        }
        const int chunkElems = 1 << 20;
        int srcSize = info.DType.Size(), dstSize = destType.Size();
        var buf = ArrayPool<byte>.Shared.Rent(chunkElems * srcSize);
        try
        {
            long total = info.NumElements;
            for (long e = 0; e < total; e += chunkElems)
            {
                int n = (int)Math.Min(chunkElems, total - e);
                var span = buf.AsSpan(0, n * srcSize);
                int got = 0;
                while (got < span.Length)
                {
                    int r = RandomAccess.Read(h, span[got..], info.Offset + e * srcSize + got);
                    if (r <= 0) throw new ModelLoadException($"{info.File}: truncated while reading tensor '{info.Name}'");
                    got += r;
                }
                Convert(span, info.DType, new Span<byte>(dest + e * dstSize, n * dstSize), destType);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    /// <summary>Converts little-endian element bytes between F32, BF16 and F16.</summary>
    public static void Convert(ReadOnlySpan<byte> src, StDType from, Span<byte> dst, StDType to)
    {
        if (from == to) { src.CopyTo(dst); return; }
        int n = src.Length / from.Size();
        var d32 = MemoryMarshal.Cast<byte, float>(dst);
        var d16 = MemoryMarshal.Cast<byte, ushort>(dst);
        var s32 = MemoryMarshal.Cast<byte, float>(src);
        var s16 = MemoryMarshal.Cast<byte, ushort>(src);
        for (int i = 0; i < n; i++)
        {
            float v = from switch
            {
                StDType.F32 => s32[i],
                StDType.BF16 => BFloat16.ToFloat(s16[i]),
                _ => (float)BitConverter.UInt16BitsToHalf(s16[i]),
            };
            switch (to)
            {
                case StDType.F32: d32[i] = v; break;
                case StDType.BF16: d16[i] = BFloat16.FromFloat(v); break;
                default: d16[i] = BitConverter.HalfToUInt16Bits((Half)v); break;
            }
        }
    }

    public void Dispose()
    {
        foreach (var h in _handles.Values) h.Dispose();
        _handles.Clear();
    }
}

/// <summary>bfloat16 bit conversions (.NET 10 has no BFloat16 type).</summary>
public static class BFloat16
{
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round to nearest even (as torch does); NaN stays a quiet NaN.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 0x40);
        u += 0x7fff + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }
}

/// <summary>Writes a safetensors file tensor by tensor, streaming each tensor's bytes from a producer.</summary>
public sealed class SafeTensorsWriter
{
    private readonly List<(string Name, StDType DType, long[] Shape, Action<Span<byte>, long> Fill)> _entries = [];
    public Dictionary<string, string> Metadata { get; } = new() { ["format"] = "pt" };

    /// <summary>Adds a tensor whose bytes are produced in chunks: <c>fill(chunk, firstElement)</c>.</summary>
    public void Add(string name, StDType dtype, long[] shape, Action<Span<byte>, long> fill) => _entries.Add((name, dtype, shape, fill));

    public void Add(string name, float[] data, long[] shape, StDType dtype) =>
        Add(name, dtype, shape, (chunk, first) =>
        {
            int n = chunk.Length / dtype.Size();
            SafeTensorsCheckpoint.Convert(MemoryMarshal.AsBytes(data.AsSpan((int)first, n)), StDType.F32, chunk, dtype);
        });

    public void Write(string path)
    {
        var header = new JsonObject();
        if (Metadata.Count > 0)
        {
            var md = new JsonObject();
            foreach (var (k, v) in Metadata) md[k] = v;
            header["__metadata__"] = md;
        }
        long offset = 0;
        foreach (var e in _entries)
        {
            long bytes = e.Shape.Aggregate(1L, (a, b) => a * b) * e.DType.Size();
            header[e.Name] = new JsonObject
            {
                ["dtype"] = e.DType.Name(),
                ["shape"] = new JsonArray(e.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - headerBytes.Length % 8) % 8;
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, headerBytes.Length + pad);
        fs.Write(len);
        fs.Write(headerBytes);
        for (int i = 0; i < pad; i++) fs.WriteByte((byte)' ');
        var buf = new byte[1 << 22];
        foreach (var e in _entries)
        {
            long total = e.Shape.Aggregate(1L, (a, b) => a * b);
            int size = e.DType.Size();
            int per = buf.Length / size;
            for (long first = 0; first < total; first += per)
            {
                int n = (int)Math.Min(per, total - first);
                var chunk = buf.AsSpan(0, n * size);
                e.Fill(chunk, first);
                fs.Write(chunk);
            }
        }
        fs.Flush(flushToDisk: true);
    }
}
