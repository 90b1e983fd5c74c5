using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Store;

namespace Memory3.Engine.Tests.Memory.Store;

public class Crc32CTests
{
    [Fact]
    public void KnownVectors()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0u, Crc32C.Compute(ReadOnlySpan<byte>.Empty));
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));                               // RFC 3720 B.4
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0xE3069283u, ~Crc32C.UpdateTable(0xFFFFFFFFu, "123456789"u8));
    }

    [Fact]
    public void HardwareAndTablePathsAgree()
    {
        var rng = new Random(7);
        for (int len = 0; len < 300; len += 7)
        {
            var data = new byte[len];
            rng.NextBytes(data);
            Assert.Equal(~Crc32C.UpdateTable(~0u, data), Crc32C.Compute(data));
            // Incremental == one shot.
            int cut = len / 3;
            Assert.Equal(Crc32C.Compute(data), ~Crc32C.Update(Crc32C.Update(~0u, data.AsSpan(0, cut)), data.AsSpan(cut)));
        }
    }
}

public class MemoryRecordCodecTests
{
    [Fact]
    public void PutRoundTripsAndEveryFlippedByteIsDetected()
    {
        var r = StoreTestData.Record(new Random(1));
        var bytes = MemoryRecordCodec.SerializePut("fp"u8, r);
        Assert.Equal("M3MR"u8.ToArray(), bytes[..4]);
        Assert.Equal(bytes.Length, BitConverter.ToInt32(bytes, 8));
        StoreTestData.AssertSame(r, MemoryRecordCodec.TryDecodePut(bytes, "fp"u8, r.Id, out var why));
        Assert.Null(why);
        Assert.Null(MemoryRecordCodec.TryDecodePut(bytes, "other"u8, r.Id, out why));
        Assert.Null(MemoryRecordCodec.TryDecodePut(bytes, "fp"u8, "another-id", out why));
        for (int i = 0; i < bytes.Length; i += 13)
        {
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0x10;
            Assert.Null(MemoryRecordCodec.TryDecodePut(copy, "fp"u8, r.Id, out why));
        }
        Assert.Null(MemoryRecordCodec.TryDecodePut(bytes.AsSpan(0, bytes.Length - 1), "fp"u8, r.Id, out _));
    }

    [Fact]
    public void TombstoneParses()
    {
        var buf = new byte[MemoryRecordCodec.GetTombstoneSize("fp"u8, "abc")];
        MemoryRecordCodec.WriteTombstone(buf, "fp"u8, "abc");
        Assert.Null(MemoryRecordCodec.TryParse(buf, out var view));
        Assert.Equal(RecordType.Tombstone, view.Type);
        Assert.Equal("abc", view.IdString);
        Assert.Null(MemoryRecordCodec.TryDecodePut(buf, "fp"u8, "abc", out var why));
        Assert.Equal("not a put record", why);
    }

    [Fact]
    public void Bf16DecoderSplitsKeysAndValuesAndRefusesOtherKinds()
    {
        var r = StoreTestData.Record(new Random(2));
        var d = Bf16Decoder.Instance.Decode(r);
        Assert.Equal(StoreTestData.VectorsHalf, d.Keys.Length);
        Assert.Equal(StoreTestData.VectorsHalf, d.Values.Length);
        Assert.Equal(BitConverter.ToUInt16(r.Payload, 0), d.Keys[0]);
        Assert.Equal(BitConverter.ToUInt16(r.Payload, r.Payload.Length / 2), d.Values[0]);
        Assert.Equal(BitConverter.ToUInt16(r.Payload, r.Payload.Length - 2), d.Values[^1]);
        Assert.Throws<NotSupportedException>(() => Bf16Decoder.Instance.Decode(r with { Kind = PayloadKind.Quantized }));
    }
}
