using System.Text.Json.Nodes;
using Memory3.Engine.Model;

namespace Memory3.Engine.Tests.Model;

public class LoadingTests
{
    private static ModelConfig Cfg => DecoderNumericsTests.Qwen2Cfg();

    private static float[] LastLogits(string dir, string dtype = "float32")
    {
        using var model = CausalLM.Load(dir, new ModelOptions { DType = dtype });
        using var pool = model.CreatePool(1, 16);
        return model.Forward(StepBatch.Contiguous([(0, 0, new[] { 1, 5, 9, 3 })]), pool)[0];
    }

    private static void RewriteWithout(string dir, Func<string, long[], (string Name, long[] Shape)?> edit)
    {
        // Re-export the checkpoint through the writer with tensors renamed, dropped or reshaped.
        using var ck = SafeTensorsCheckpoint.Open(dir);
        var w = new SafeTensorsWriter();
        foreach (var info in ck.Tensors.Values.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            var e = edit(info.Name, info.Shape);
            if (e is null) continue;
            long n = e.Value.Shape.Aggregate(1L, (a, b) => a * b);
            w.Add(e.Value.Name, new float[n], e.Value.Shape, StDType.F32);
        }
        var tmp = Path.Combine(dir, "new.tmp");
        w.Write(tmp);
        ck.Dispose();
        File.Move(tmp, Path.Combine(dir, "model.safetensors"), overwrite: true);
    }

    [Fact]
    public void AMissingTensorIsNamed()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, Cfg, StDType.F32);
        RewriteWithout(tmp.Path, (n, s) => n == "model.layers.1.mlp.up_proj.weight" ? null : (n, s));
        var e = Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path));
        Assert.Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'", e.Message);
    }

    [Fact]
    public void AMisshapenTensorIsNamedWithBothShapes()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, Cfg, StDType.F32);
        RewriteWithout(tmp.Path, (n, s) => n == "model.layers.0.self_attn.k_proj.weight" ? (n, [s[0] + 1, s[1]]) : (n, s));
        var e = Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path));
        Assert.Contains("tensor 'model.layers.0.self_attn.k_proj.weight' has shape [17, 32], expected [16, 32]", e.Message);
    }

    [Fact]
    public void AnUnexpectedTensorIsNamed()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, Cfg, StDType.F32);
        RewriteWithout(tmp.Path, (n, s) => n == "model.norm.weight" ? ("model.final_norm.weight", s) : (n, s));
        var e = Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path));
        Assert.Contains("unexpected tensor 'model.final_norm.weight'", e.Message);
        Assert.Contains("missing tensor 'model.norm.weight'", e.Message);
    }

    [Fact]
    public void QwenBiasesAreRequired()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, Cfg, StDType.F32);
        RewriteWithout(tmp.Path, (n, s) => n.EndsWith("q_proj.bias") ? null : (n, s));
        var e = Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path));
        Assert.Contains("missing tensor 'model.layers.0.self_attn.q_proj.bias'", e.Message);
    }

    [Fact]
    public void ATruncatedFileIsReportedWithItsPath()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, Cfg, StDType.F32);
        var file = Path.Combine(tmp.Path, "model.safetensors");
        using (var fs = new FileStream(file, FileMode.Open)) fs.SetLength(fs.Length - 100);
        var e = Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path));
        Assert.Contains(file, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Theory]
    [InlineData("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32}", "key 'num_attention_heads' is missing")]
    [InlineData("{\"architectures\":[\"GPT2LMHeadModel\"]}", "unsupported architecture 'GPT2LMHeadModel'")]
    [InlineData("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":\"big\"}", "key 'hidden_size' must be an integer")]
    [InlineData("{\"architectures\":[\"LlamaForCausalLM\"],", "malformed JSON")]
    [InlineData("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"num_attention_heads\":4,\"num_key_value_heads\":3}", "key 'num_key_value_heads' (3) must divide")]
    public void ConfigErrorsNameTheKey(string json, string expected)
    {
        using var tmp = new TempDir();
        File.WriteAllText(Path.Combine(tmp.Path, "config.json"), json);
        var e = Assert.Throws<ModelLoadException>(() => ModelConfig.Load(tmp.Path));
        Assert.Contains(expected, e.Message);
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void ASlidingWindowCapsTheContextUnlessSwitchedOff()
    {
        var o = Cfg.ToJson();
        o["max_position_embeddings"] = 32768;
        o["sliding_window"] = 4096;
        Assert.Equal(4096, ModelConfig.Parse(o).MaxPositionEmbeddings);
        o["use_sliding_window"] = false;
        Assert.Equal(32768, ModelConfig.Parse(o).MaxPositionEmbeddings);
    }

    [Fact]
    public void Memory3KeysAreParsedWithThePapersDefaults()
    {
        var o = Cfg.ToJson();
        o["architectures"] = new JsonArray("Memory3ForCausalLM");
        o["num_hidden_layers"] = 44;
        o["memory_tokens_per_head"] = 4;
        var c = ModelConfig.Parse(o);
        Assert.NotNull(c.Memory);
        Assert.Equal(22, c.Memory!.MemoryLayers);
        Assert.Equal(4, c.Memory.MemoryTokensPerHead);
        Assert.Equal(128, c.Memory.ReferenceMaxTokens);
        Assert.Equal(5, c.Memory.MemoriesPerChunk);
        Assert.Equal(64, c.Memory.RetrievalInterval);
        Assert.Equal("<s>Reference:", c.Memory.ReferencePrefix);
        Assert.Equal(c.Memory, ModelConfig.Parse(c.ToJson()).Memory);
    }

    [Fact]
    public void ShardedCheckpointsLoadTheSameWeights()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Sub("one"), Cfg, StDType.F32, seed: 5);
        RandomModel.Write(tmp.Sub("three"), Cfg, StDType.F32, seed: 5, shards: 3);
        Assert.True(File.Exists(Path.Combine(tmp.Path, "three", "model.safetensors.index.json")));
        Assert.Equal(3, Directory.GetFiles(Path.Combine(tmp.Path, "three"), "*.safetensors").Length);
        Assert.Equal(LastLogits(tmp.Sub("one")), LastLogits(tmp.Sub("three")));
    }

    [Fact]
    public void F16AndBf16CheckpointsConvertToTheTargetDtype()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Sub("f32"), Cfg, StDType.F32, seed: 9);
        RandomModel.Write(tmp.Sub("f16"), Cfg, StDType.F16, seed: 9);
        RandomModel.Write(tmp.Sub("bf16"), Cfg, StDType.BF16, seed: 9);
        var reference = LastLogits(tmp.Sub("f32"));
        var f16 = LastLogits(tmp.Sub("f16"));
        var bf16InBf16 = LastLogits(tmp.Sub("bf16"), "bfloat16");
        var f32InBf16 = LastLogits(tmp.Sub("f32"), "bfloat16");
        Assert.True(reference.Zip(f16).Max(p => Math.Abs(p.First - p.Second)) < 0.02);
        // An F32 checkpoint loaded as bf16 rounds exactly as a BF16 checkpoint does.
        Assert.Equal(bf16InBf16, f32InBf16);
        Assert.True(reference.Zip(bf16InBf16).Max(p => Math.Abs(p.First - p.Second)) < 0.5);
        Assert.NotEqual(reference, f16);
    }

    [Fact]
    public void CudaWithoutCudaFailsClearly()
    {
        using var tmp = new TempDir();
        RandomModel.Write(tmp.Path, Cfg, StDType.F32);
        if (TorchSharp.torch.cuda.is_available()) return; // the message is for machines without CUDA
        var e = Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path, new ModelOptions { Device = "cuda" }));
        Assert.Contains("CUDA is not available", e.Message);
        Assert.Throws<ModelLoadException>(() => CausalLM.Load(tmp.Path, new ModelOptions { DType = "float16" }));
    }

    [Fact]
    public void TheSlotPoolIsPreallocatedAndReusesSlots()
    {
        var cfg = Cfg;
        using var pool = new KvCachePool(cfg, 3, 8, TorchSharp.torch.ScalarType.Float32);
        Assert.Equal(KvCachePool.BytesFor(cfg, 3, 8, TorchSharp.torch.ScalarType.Float32), pool.Bytes);
        Assert.Equal(new long[] { 3, cfg.NumKeyValueHeads, 8, cfg.HeadDim }, pool.K(0).shape);
        int a = pool.Allocate(), b = pool.Allocate(), c = pool.Allocate();
        Assert.Equal(3, new[] { a, b, c }.Distinct().Count());
        Assert.False(pool.TryAllocate(out _));
        pool.Free(b);
        Assert.Throws<InvalidOperationException>(() => pool.Free(b));   // a double free would share a slot
        Assert.Equal(b, pool.Allocate());
        var handle = pool.K(0).Handle;
        using var model = LoadTiny(out var dir);
        Assert.Equal(handle, pool.K(0).Handle);
        dir.Dispose();
    }

    private static CausalLM LoadTiny(out TempDir dir)
    {
        dir = new TempDir();
        RandomModel.Write(dir.Path, Cfg, StDType.F32);
        return CausalLM.Load(dir.Path);
    }

    [Fact]
    public void ASequenceBeyondItsSlotIsRefused()
    {
        using var model = LoadTiny(out var dir);
        using var pool = model.CreatePool(1, 4);
        Assert.Throws<ArgumentException>(() => model.Forward(StepBatch.Contiguous([(0, 2, new[] { 1, 2, 3 })]), pool));
        Assert.Throws<ArgumentException>(() => model.Forward(StepBatch.Contiguous([(0, 0, new[] { 1, 999 })]), pool));
        dir.Dispose();
    }
}
