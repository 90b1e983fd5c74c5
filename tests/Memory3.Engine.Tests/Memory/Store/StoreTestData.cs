using System.Text;
using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Store;

namespace Memory3.Engine.Tests.Memory.Store;

/// <summary>Small random memories (2 layers × 2 KV heads × 4 tokens × head_dim 8, bf16) and byte-exact checks.</summary>
internal static class StoreTestData
{
    public const int Positions = 2 * 2 * 4;
    public const int VectorsHalf = Positions * 8;   // ushorts in keys (and in values)

    public static string NewFingerprint() => "fp-" + Guid.NewGuid().ToString("N");

    public static MemoryRecord Record(Random rng, string? id = null, int payloadScale = 1)
    {
        var payload = new byte[4 * VectorsHalf * payloadScale];
        rng.NextBytes(payload);
        var positions = new ushort[Positions];
        for (int i = 0; i < positions.Length; i++) positions[i] = (ushort)rng.Next(0, 65536);
        return new MemoryRecord
        {
            Id = id ?? Guid.NewGuid().ToString("N"),
            Namespace = "tenant-" + rng.Next(3),
            Text = "Zürich → 東京, reference " + rng.Next() + " with \"quotes\" and 🙂",
            Positions = positions,
            Kind = PayloadKind.Bf16,
            Payload = payload,
        };
    }

    public static List<MemoryRecord> Records(int n, int seed, int payloadScale = 1)
    {
        var rng = new Random(seed);
        var list = new List<MemoryRecord>(n);
        for (int i = 0; i < n; i++) list.Add(Record(rng, payloadScale: payloadScale));
        return list;
    }

    /// <summary>Byte-exact: the serialized forms (every field, CRC included) are identical.</summary>
    public static void AssertSame(MemoryRecord expected, MemoryRecord? actual)
    {
        Assert.NotNull(actual);
        var fp = "x"u8;
        Assert.Equal(MemoryRecordCodec.SerializePut(fp, expected), MemoryRecordCodec.SerializePut(fp, actual!));
        Assert.Equal(expected.Id, actual!.Id);
        Assert.Equal(expected.Namespace, actual.Namespace);
        Assert.Equal(expected.Text, actual.Text);
        Assert.Equal(expected.Positions, actual.Positions);
        Assert.Equal(expected.Kind, actual.Kind);
        Assert.Equal(expected.Payload, actual.Payload);
    }

    public static void AssertSame(MemoryRecord expected, DecodedMemory? actual)
    {
        Assert.NotNull(actual);
        var d = Bf16Decoder.Instance.Decode(expected);
        Assert.Equal(d.Id, actual!.Id);
        Assert.Equal(d.Namespace, actual.Namespace);
        Assert.Equal(d.Text, actual.Text);
        Assert.Equal(d.Positions, actual.Positions);
        Assert.Equal(d.Keys, actual.Keys);
        Assert.Equal(d.Values, actual.Values);
    }

    public static int SizeOf(string fingerprint, MemoryRecord r) => MemoryRecordCodec.GetPutSize(Encoding.UTF8.GetBytes(fingerprint), r);
}
