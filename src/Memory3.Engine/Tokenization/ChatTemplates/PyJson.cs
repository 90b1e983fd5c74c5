using System.Globalization;
using System.Text;

namespace Memory3.Engine.Tokenization.ChatTemplates;

/// <summary>
/// Python's <c>json.dumps</c>, as transformers' <c>tojson</c> filter calls it
/// (<c>ensure_ascii=False, indent=None, separators=None, sort_keys=False</c> unless the template passes others):
/// no HTML escaping, <c>", "</c> and <c>": "</c> separators (<c>","</c> after items when indenting), keys in insertion order.
/// </summary>
static class PyJson
{
    public static string Dumps(object? v, int? indent = null, bool ensureAscii = false, (string Item, string Key)? separators = null, bool sortKeys = false)
    {
        var sep = separators ?? (indent is null ? (", ", ": ") : (",", ": "));
        var sb = new StringBuilder();
        Write(sb, v, indent, 0, ensureAscii, sep, sortKeys);
        return sb.ToString();
    }

    static void Write(StringBuilder sb, object? v, int? indent, int level, bool ascii, (string Item, string Key) sep, bool sortKeys)
    {
        switch (v)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : Py.FloatRepr(d));
                return;
            case string s: WriteString(sb, s, ascii); return;
            case List<object?> list:
                if (list.Count == 0) { sb.Append("[]"); return; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(sep.Item);
                    NewLine(sb, indent, level + 1);
                    Write(sb, list[i], indent, level + 1, ascii, sep, sortKeys);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                return;
            case Dictionary<string, object?> dict:
                if (dict.Count == 0) { sb.Append("{}"); return; }
                sb.Append('{');
                IEnumerable<KeyValuePair<string, object?>> pairs = sortKeys ? dict.OrderBy(p => p.Key, StringComparer.Ordinal) : dict;
                bool first = true;
                foreach (var (k, val) in pairs)
                {
                    if (!first) sb.Append(sep.Item);
                    first = false;
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, k, ascii);
                    sb.Append(sep.Key);
                    Write(sb, val, indent, level + 1, ascii, sep, sortKeys);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                return;
            case Undefined u: throw new ChatTemplateException($"Object of type Undefined is not JSON serializable ('{u.Name}' is undefined)");
            default: throw new ChatTemplateException($"Object of type {Py.TypeName(v)} is not JSON serializable");
        }
    }

    static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent is not { } n) return;
        sb.Append('\n').Append(' ', n * level);
    }

    static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7e)) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
