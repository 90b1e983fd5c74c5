using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Memory3.Engine.Model;

/// <summary>
/// A loaded Llama-family model: the config, the weights and the forward pass over flattened batches.
/// Owns every weight tensor. Must be used from one thread (the engine thread): TorchSharp's dispose scopes
/// and grad mode are per thread.
/// </summary>
public sealed class CausalLM : IDisposable
{
    private readonly LlamaForCausalLM _module;
    private readonly Tensor _invFreq;

    public ModelConfig Config { get; }
    public ScalarType DType { get; }
    public Device Device { get; }
    public string Directory { get; }
    public long ParameterCount { get; }
    public long WeightBytes { get; }

    private CausalLM(string dir, ModelConfig config, LlamaForCausalLM module, ScalarType dtype, Device device)
    {
        Directory = dir; Config = config; _module = module; DType = dtype; Device = device;
        foreach (var (_, p) in module.named_parameters())
        {
            ParameterCount += p.numel();
            WeightBytes += p.numel() * p.element_size();
        }
        _invFreq = tensor(Rope.InverseFrequencies(config).Select(v => (float)v).ToArray(), ScalarType.Float32, device);
    }

    internal LlamaForCausalLM Module => _module;

    /// <summary>Loads a Hugging Face style model directory strictly: a missing, unexpected or misshapen tensor is an error naming it.</summary>
    public static CausalLM Load(string modelDir, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        var config = ModelConfig.Load(modelDir);
        var dtype = options.ScalarType;
        var device = ResolveDevice(options.Device);
        if (device.type == DeviceType.CPU && dtype == ScalarType.Float16)
            throw new ModelLoadException("dtype float16 is not supported on CPU (about 2 GFLOP/s here); use bfloat16 or float32");

        using var ck = SafeTensorsCheckpoint.Open(modelDir);
        var module = new LlamaForCausalLM(config, dtype);
        try
        {
            var expected = module.named_parameters().ToList();
            CheckStrict(modelDir, config, expected.Select(p => (p.name, p.parameter.shape)).ToList(), ck.Tensors);
            var destType = dtype switch { ScalarType.Float32 => StDType.F32, ScalarType.Float16 => StDType.F16, _ => StDType.BF16 };
            foreach (var (name, p) in expected) ReadParameter(ck, ck.Tensors[name], p, destType);
            if (device.type != DeviceType.CPU) module.to(device);
            module.eval();
            return new CausalLM(modelDir, config, module, dtype, device);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static unsafe void ReadParameter(SafeTensorsCheckpoint ck, StTensorInfo info, Tensor p, StDType destType)
    {
        // The raw data pointer (not Tensor.bytes, whose Span stops at 2 GiB: a 7B model's f32 embedding is larger).
        ck.ReadInto(info, (byte*)Kernels.Bf16Gemv.DataPtr(p), destType);
    }

    private static void CheckStrict(string dir, ModelConfig c, List<(string Name, long[] Shape)> expected, IReadOnlyDictionary<string, StTensorInfo> found)
    {
        var problems = new List<string>();
        var expectedNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape) in expected)
        {
            expectedNames.Add(name);
            if (!found.TryGetValue(name, out var info)) problems.Add($"missing tensor '{name}' [{string.Join(", ", shape)}]");
            else if (!info.Shape.SequenceEqual(shape))
                problems.Add($"tensor '{name}' has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", shape)}]");
        }
        foreach (var name in found.Keys.Order(StringComparer.Ordinal))
        {
            if (expectedNames.Contains(name)) continue;
            // Buffers some exporters keep, and a duplicated head when embeddings are tied: not weights this model reads.
            if (name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)) continue;
            if (c.TieWordEmbeddings && name == "lm_head.weight") continue;
            problems.Add($"unexpected tensor '{name}'");
        }
        if (problems.Count > 0)
        {
            var shown = string.Join("; ", problems.Take(5));
            var more = problems.Count > 5 ? $" (and {problems.Count - 5} more)" : "";
            throw new ModelLoadException($"{dir}: checkpoint does not match {c.Architecture}: {shown}{more}");
        }
    }

    private static Device ResolveDevice(string spec)
    {
        if (spec.StartsWith("cuda", StringComparison.OrdinalIgnoreCase))
        {
            bool available;
            try { available = cuda.is_available(); } catch (Exception) { available = false; }
            if (!available)
                throw new ModelLoadException($"device '{spec}' requested but CUDA is not available: this build uses the CPU libtorch (build with -p:TorchDevice=cuda on a machine with an NVIDIA GPU)");
            return torch.device(spec);
        }
        if (!spec.Equals("cpu", StringComparison.OrdinalIgnoreCase)) throw new ModelLoadException($"device '{spec}' is not supported (use cpu or cuda)");
        return CPU;
    }

    /// <summary>libtorch intra-op threads for steps that go to libtorch's GEMM (default: all cores).</summary>
    public int Threads { get; set; } = Environment.ProcessorCount;
    private int _threadsNow = -1;

    /// <summary>
    /// A step small enough for the bf16 kernel runs libtorch's remaining small ops on one thread: its OpenMP workers
    /// would otherwise spin at every barrier against the kernel's own workers (measured: 148 → 68 ms per 0.55B decode
    /// step). Larger steps give libtorch every core. OpenMP's thread count is per calling thread, and the model is
    /// driven from one thread.
    /// </summary>
    internal void SetThreadsFor(int rows)
    {
        int want = Device.type == DeviceType.CPU && DType == ScalarType.BFloat16 && rows <= LinearDispatch.SmallRowThreshold ? 1 : Threads;
        if (want == _threadsNow) return;
        set_num_threads(want);
        _threadsNow = want;
    }

    public KvCachePool CreatePool(int slots, int maxTokensPerSlot) => new(Config, slots, maxTokensPerSlot, DType, Device);

    /// <summary>
    /// One forward over a flattened batch. Returns, per sequence, the float32 logits of its last row
    /// ([vocab]) or of all its rows ([Length * vocab]) when <see cref="SequenceSlice.AllLogits"/> is set.
    /// </summary>
    public float[][] Forward(StepBatch batch, KvCachePool pool)
    {
        batch.Validate(Config.VocabSize, pool);
        SetThreadsFor(batch.TotalTokens);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var rows = new List<long>(batch.Sequences.Length);
        foreach (var s in batch.Sequences)
        {
            if (s.AllLogits) for (int i = 0; i < s.Length; i++) rows.Add(s.Start + i);
            else rows.Add(s.Start + s.Length - 1);
        }
        var ids = tensor(batch.TokenIds.Select(t => (long)t).ToArray(), ScalarType.Int64, Device);
        var (cos, sin) = Rope.Tables(_invFreq, batch.Positions, DType, Device);
        using var ctx = new StepContext(batch, pool, cos, sin, Device);
        var rowIdx = rows.Count == batch.TotalTokens ? null : tensor(rows.ToArray(), ScalarType.Int64, Device);
        var logits = _module.Forward(ctx, ids, rowIdx);
        if (logits.device_type != DeviceType.CPU) logits = logits.cpu();
        logits = logits.contiguous();
        var flat = MemoryMarshal.Cast<byte, float>(logits.bytes);
        int vocab = Config.VocabSize;
        var result = new float[batch.Sequences.Length][];
        int r = 0;
        for (int s = 0; s < batch.Sequences.Length; s++)
        {
            int n = batch.Sequences[s].AllLogits ? batch.Sequences[s].Length : 1;
            result[s] = flat.Slice(r * vocab, n * vocab).ToArray();
            r += n;
        }
        return result;
    }

    /// <summary>
    /// Copies memories into a sequence's memory slots: memory <c>j</c>'s tokens for KV head <c>h</c> of memory layer
    /// <c>l</c> go to cache indices <c>memoryStart + j·tokens_per_head ..</c> of that head. Keys arrive rotated.
    /// Each memory is [memory_layers, memory_kv_heads, tokens_per_head, head_dim] bf16.
    /// </summary>
    public void WriteMemories(KvCachePool pool, int slot, int memoryStart, IReadOnlyList<(ushort[] Keys, ushort[] Values)> memories)
    {
        var mem = Config.Memory ?? throw new InvalidOperationException("this model reads no memory");
        int L = mem.MemoryLayers, H = mem.MemoryKvHeads, T = mem.MemoryTokensPerHead, D = Config.HeadDim;
        if (memoryStart + memories.Count * T > pool.MaxTokensPerSlot) throw new ArgumentException("memory slots exceed the slot's capacity");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int j = 0; j < memories.Count; j++)
        {
            var (keys, values) = memories[j];
            if (keys.Length != L * H * T * D || values.Length != keys.Length)
                throw new ArgumentException($"memory {j} has {keys.Length} key elements; expected {L}x{H}x{T}x{D}");
            var k = FromBf16(keys, [L, H, T, D]);
            var v = FromBf16(values, [L, H, T, D]);
            for (int l = 0; l < L; l++)
            {
                pool.K(l)[slot].narrow(0, 0, H).narrow(1, memoryStart + j * T, T).copy_(k[l]);
                pool.V(l)[slot].narrow(0, 0, H).narrow(1, memoryStart + j * T, T).copy_(v[l]);
            }
        }
    }

    private Tensor FromBf16(ushort[] bits, long[] shape)
    {
        var t = empty(shape, ScalarType.BFloat16);
        MemoryMarshal.AsBytes(bits.AsSpan()).CopyTo(t.bytes);
        return Device.type == DeviceType.CPU && DType == ScalarType.BFloat16 ? t : t.to(DType, Device);
    }

    public void Dispose()
    {
        _invFreq.Dispose();
        _module.Dispose();
    }
}
