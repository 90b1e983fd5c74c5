using System.Text;

namespace Memory3.Engine.Tokenization;

/// <summary>
/// Unicode NFC. The engine runs with InvariantGlobalization, where <see cref="string.Normalize()"/> has no ICU data
/// and leaves non-ASCII text unchanged, so Qwen's NFC normalizer is implemented here from generated tables
/// (<see cref="NfcData"/>): full canonical decomposition, canonical ordering, canonical composition (UAX #15).
/// </summary>
internal static class Nfc
{
    static readonly Dictionary<int, int[]> Decomp = BuildDecomp();
    static readonly Dictionary<int, byte> Ccc = BuildCcc();
    static readonly Dictionary<long, int> Comp = BuildComp();
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    public static string Normalize(string s)
    {
        int i = 0;
        while (i < s.Length && s[i] < 0x300) i++;
        if (i == s.Length) return s; // below U+0300 everything is already NFC

        // Decompose (from the first possibly affected position's starter onwards).
        var cps = new List<int>(s.Length + 8);
        foreach (var r in s.EnumerateRunes()) Decompose(r.Value, cps);

        // Canonical ordering: stable sort of each run of non-starters by combining class.
        for (int k = 1; k < cps.Count; k++)
        {
            int c = CccOf(cps[k]);
            if (c == 0) continue;
            int j = k;
            while (j > 0 && CccOf(cps[j - 1]) > c) { (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]); j--; }
        }

        // Canonical composition.
        var outp = new List<int>(cps.Count);
        int starter = -1; int lastCcc = -1;
        foreach (int cp in cps)
        {
            int c = CccOf(cp);
            if (starter >= 0)
            {
                int st = outp[starter];
                bool blocked = lastCcc != -1 && (lastCcc == 0 || lastCcc >= c);
                if (!blocked && TryCompose(st, cp, out int composed))
                {
                    outp[starter] = composed;
                    continue;
                }
            }
            if (c == 0) { starter = outp.Count; lastCcc = -1; }
            else lastCcc = c;
            outp.Add(cp);
        }
        var sb = new StringBuilder(s.Length);
        foreach (int cp in outp) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    static void Decompose(int cp, List<int> output)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int si = cp - SBase;
            output.Add(LBase + si / NCount);
            output.Add(VBase + si % NCount / TCount);
            if (si % TCount != 0) output.Add(TBase + si % TCount);
            return;
        }
        if (Decomp.TryGetValue(cp, out var d)) output.AddRange(d);
        else output.Add(cp);
    }

    static bool TryCompose(int a, int b, out int composed)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        { composed = SBase + ((a - LBase) * VCount + (b - VBase)) * TCount; return true; }
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
        { composed = a + (b - TBase); return true; }
        return Comp.TryGetValue(((long)a << 21) | (uint)b, out composed);
    }

    static int CccOf(int cp) => Ccc.TryGetValue(cp, out byte c) ? c : 0;

    static Dictionary<int, int[]> BuildDecomp()
    {
        var d = new Dictionary<int, int[]>();
        var a = NfcData.Decompositions;
        for (int i = 0; i < a.Length;) { int cp = a[i], n = a[i + 1]; d[cp] = a[(i + 2)..(i + 2 + n)]; i += 2 + n; }
        return d;
    }

    static Dictionary<int, byte> BuildCcc()
    {
        var d = new Dictionary<int, byte>();
        var a = NfcData.CombiningClasses;
        for (int i = 0; i < a.Length; i += 2) d[a[i]] = (byte)a[i + 1];
        return d;
    }

    static Dictionary<long, int> BuildComp()
    {
        var d = new Dictionary<long, int>();
        var a = NfcData.Compositions;
        for (int i = 0; i < a.Length; i += 3) d[((long)a[i] << 21) | (uint)a[i + 1]] = a[i + 2];
        return d;
    }
}
