using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Memory3.Engine.Memory.Store;

/// <summary>What a serialized record says about its memory.</summary>
public enum RecordType : byte
{
    Put = 1,
    Tombstone = 2,
}

/// <summary>
/// The self-describing record that the disk segments and Redis values hold (docs/memory-store.md has the table).
/// All integers little-endian, all strings UTF-8:
/// <code>
/// 0   4  magic "M3MR"          4  2  format version (1)      6  1  record type (1 put, 2 tombstone)
/// 7   1  payload kind          8  4  total length L (magic .. CRC inclusive)
/// 12  2  fingerprint bytes F, then F bytes     2  id bytes I, then I bytes     2  namespace bytes N, then N bytes
///     4  text bytes T, then T bytes            4  position count P, then 2P bytes (u16)
///     4  payload bytes Y, then Y bytes         L-4  4  CRC-32C of bytes [0, L-4)
/// </code>
/// </summary>
public static class MemoryRecordCodec
{
    /// <summary>"M3MR" as bytes: 0x4D 0x33 0x4D 0x52.</summary>
    public static ReadOnlySpan<byte> Magic => "M3MR"u8;
    public const ushort FormatVersion = 1;
    public const int HeaderSize = 12;
    /// <summary>Header, four empty strings/arrays with their lengths, the payload length and the CRC.</summary>
    public const int MinRecordSize = HeaderSize + 2 + 2 + 2 + 4 + 4 + 4 + 4;

    /// <summary>Serialized size of a put record.</summary>
    public static int GetPutSize(ReadOnlySpan<byte> fingerprint, MemoryRecord r)
    {
        long size = MinRecordSize + (long)fingerprint.Length + Encoding.UTF8.GetByteCount(r.Id) + Encoding.UTF8.GetByteCount(r.Namespace)
            + Encoding.UTF8.GetByteCount(r.Text) + 2L * r.Positions.Length + r.Payload.Length;
        if (size > int.MaxValue - 64) throw new ArgumentException($"Memory {r.Id} serializes to {size} bytes: too large for one record.");
        return (int)size;
    }

    public static int GetTombstoneSize(ReadOnlySpan<byte> fingerprint, string id) => MinRecordSize + fingerprint.Length + Encoding.UTF8.GetByteCount(id);

    /// <summary>Writes a put record into <paramref name="dest"/> (exactly <see cref="GetPutSize"/> bytes) and returns its length.</summary>
    public static int WritePut(Span<byte> dest, ReadOnlySpan<byte> fingerprint, MemoryRecord r)
    {
        ValidateForWrite(fingerprint, r.Id);
        if (Encoding.UTF8.GetByteCount(r.Namespace) > ushort.MaxValue) throw new ArgumentException($"Memory {r.Id}: namespace longer than 65535 UTF-8 bytes.");
        int len = GetPutSize(fingerprint, r);
        var w = new Writer(dest[..len]);
        w.Header(RecordType.Put, r.Kind, len);
        w.Short(fingerprint);
        w.ShortString(r.Id);
        w.ShortString(r.Namespace);
        w.LongString(r.Text);
        w.U32((uint)r.Positions.Length);
        if (BitConverter.IsLittleEndian) w.Bytes(MemoryMarshal.AsBytes(r.Positions.AsSpan()));
        else foreach (ushort p in r.Positions) w.U16(p);
        w.U32((uint)r.Payload.Length);
        w.Bytes(r.Payload);
        w.Crc();
        return len;
    }

    public static int WriteTombstone(Span<byte> dest, ReadOnlySpan<byte> fingerprint, string id)
    {
        ValidateForWrite(fingerprint, id);
        int len = GetTombstoneSize(fingerprint, id);
        var w = new Writer(dest[..len]);
        w.Header(RecordType.Tombstone, 0, len);
        w.Short(fingerprint);
        w.ShortString(id);
        w.ShortString("");
        w.LongString("");
        w.U32(0);
        w.U32(0);
        w.Crc();
        return len;
    }

    public static byte[] SerializePut(ReadOnlySpan<byte> fingerprint, MemoryRecord r)
    {
        var bytes = new byte[GetPutSize(fingerprint, r)];
        WritePut(bytes, fingerprint, r);
        return bytes;
    }

    /// <summary>
    /// Reads the fixed 12-byte header. False when the magic or version is wrong or the length is implausible
    /// (below <see cref="MinRecordSize"/> or above <paramref name="maxRecordBytes"/>).
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> header, int maxRecordBytes, out RecordType type, out int length)
    {
        type = 0;
        length = 0;
        if (header.Length < HeaderSize || !header[..4].SequenceEqual(Magic)) return false;
        if (BinaryPrimitives.ReadUInt16LittleEndian(header[4..]) != FormatVersion) return false;
        type = (RecordType)header[6];
        if (type is not (RecordType.Put or RecordType.Tombstone)) return false;
        uint len = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        if (len < MinRecordSize || len > (uint)maxRecordBytes) return false;
        length = (int)len;
        return true;
    }

    /// <summary>
    /// Checks a whole record (magic, version, length, CRC-32C, field bounds) and exposes its fields without copying.
    /// Returns null on success, or why it is not a valid record.
    /// </summary>
    public static string? TryParse(ReadOnlySpan<byte> rec, out RecordView view)
    {
        view = default;
        if (!TryReadHeader(rec, int.MaxValue, out var type, out int len)) return "bad header";
        if (len != rec.Length) return "length mismatch";
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(rec[(len - 4)..]);
        if (Crc32C.Compute(rec[..(len - 4)]) != stored) return "CRC-32C mismatch";
        var body = rec[HeaderSize..(len - 4)];
        int pos = 0;
        if (!Take(body, ref pos, 2, out var fp) || !Take(body, ref pos, 2, out var id) || !Take(body, ref pos, 2, out var ns)
            || !Take(body, ref pos, 4, out var text) || !TakeArray(body, ref pos, out var positions)
            || !Take(body, ref pos, 4, out var payload) || pos != body.Length)
            return "field lengths disagree with the record length";
        if (id.IsEmpty) return "empty memory id";
        view = new RecordView(type, (PayloadKind)rec[7], fp, id, ns, text, positions, payload);
        return null;
    }

    private static bool Take(ReadOnlySpan<byte> body, scoped ref int pos, int prefix, out ReadOnlySpan<byte> field)
    {
        field = default;
        if (body.Length - pos < prefix) return false;
        long n = prefix == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(body[pos..]) : BinaryPrimitives.ReadUInt32LittleEndian(body[pos..]);
        pos += prefix;
        if (n > body.Length - pos) return false;
        field = body.Slice(pos, (int)n);
        pos += (int)n;
        return true;
    }

    private static bool TakeArray(ReadOnlySpan<byte> body, scoped ref int pos, out ReadOnlySpan<byte> field)
    {
        field = default;
        if (body.Length - pos < 4) return false;
        long n = 2L * BinaryPrimitives.ReadUInt32LittleEndian(body[pos..]);
        pos += 4;
        if (n > body.Length - pos) return false;
        field = body.Slice(pos, (int)n);
        pos += (int)n;
        return true;
    }

    /// <summary>Parses and checks a put record and that it belongs to <paramref name="fingerprint"/> (and to <paramref name="expectedId"/> when given).</summary>
    public static MemoryRecord? TryDecodePut(ReadOnlySpan<byte> rec, ReadOnlySpan<byte> fingerprint, string? expectedId, out string? error)
    {
        error = TryParse(rec, out var view);
        if (error is not null) return null;
        if (view.Type != RecordType.Put) { error = "not a put record"; return null; }
        if (!view.Fingerprint.SequenceEqual(fingerprint)) { error = "bank fingerprint differs"; return null; }
        var rec2 = view.ToMemoryRecord();
        if (expectedId is not null && rec2.Id != expectedId) { error = "memory id differs"; return null; }
        return rec2;
    }

    private static void ValidateForWrite(ReadOnlySpan<byte> fingerprint, string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        if (fingerprint.Length > ushort.MaxValue) throw new ArgumentException("Bank fingerprint longer than 65535 UTF-8 bytes.");
        if (Encoding.UTF8.GetByteCount(id) > ushort.MaxValue) throw new ArgumentException("Memory id longer than 65535 UTF-8 bytes.");
    }

    private ref struct Writer(Span<byte> dest)
    {
        private readonly Span<byte> _dest = dest;
        private int _pos;

        public void Header(RecordType type, PayloadKind kind, int len)
        {
            Magic.CopyTo(_dest);
            BinaryPrimitives.WriteUInt16LittleEndian(_dest[4..], FormatVersion);
            _dest[6] = (byte)type;
            _dest[7] = (byte)kind;
            BinaryPrimitives.WriteUInt32LittleEndian(_dest[8..], (uint)len);
            _pos = HeaderSize;
        }

        public void U16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(_dest[_pos..], v); _pos += 2; }
        public void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_dest[_pos..], v); _pos += 4; }
        public void Bytes(ReadOnlySpan<byte> b) { b.CopyTo(_dest[_pos..]); _pos += b.Length; }
        public void Short(ReadOnlySpan<byte> b) { U16((ushort)b.Length); Bytes(b); }

        public void ShortString(string s)
        {
            int n = Encoding.UTF8.GetBytes(s, _dest[(_pos + 2)..]);
            U16((ushort)n);
            _pos += n;
        }

        public void LongString(string s)
        {
            int n = Encoding.UTF8.GetBytes(s, _dest[(_pos + 4)..]);
            U32((uint)n);
            _pos += n;
        }

        public void Crc()
        {
            U32(Crc32C.Compute(_dest[.._pos]));
            if (_pos != _dest.Length) throw new InvalidOperationException("Record size computed wrongly.");
        }
    }
}

/// <summary>A checked record's fields, as views into its bytes.</summary>
public readonly ref struct RecordView(RecordType type, PayloadKind kind, ReadOnlySpan<byte> fingerprint, ReadOnlySpan<byte> id,
    ReadOnlySpan<byte> ns, ReadOnlySpan<byte> text, ReadOnlySpan<byte> positions, ReadOnlySpan<byte> payload)
{
    public RecordType Type { get; } = type;
    public PayloadKind Kind { get; } = kind;
    public ReadOnlySpan<byte> Fingerprint { get; } = fingerprint;
    public ReadOnlySpan<byte> Id { get; } = id;
    public ReadOnlySpan<byte> Namespace { get; } = ns;
    public ReadOnlySpan<byte> Text { get; } = text;
    /// <summary>u16 little-endian values.</summary>
    public ReadOnlySpan<byte> Positions { get; } = positions;
    public ReadOnlySpan<byte> Payload { get; } = payload;

    public string IdString => Encoding.UTF8.GetString(Id);

    public MemoryRecord ToMemoryRecord()
    {
        var positions = new ushort[Positions.Length / 2];
        if (BitConverter.IsLittleEndian) Positions.CopyTo(MemoryMarshal.AsBytes(positions.AsSpan()));
        else for (int i = 0; i < positions.Length; i++) positions[i] = BinaryPrimitives.ReadUInt16LittleEndian(Positions[(2 * i)..]);
        return new MemoryRecord
        {
            Id = Encoding.UTF8.GetString(Id),
            Namespace = Encoding.UTF8.GetString(Namespace),
            Text = Encoding.UTF8.GetString(Text),
            Positions = positions,
            Kind = Kind,
            Payload = Payload.ToArray(),
        };
    }
}
