using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Memory3.Engine.Tokenization.ChatTemplates;

/// <summary>Jinja's default Undefined: falsy, renders as "", iterates as empty; attribute access on it fails.</summary>
sealed class Undefined(string name)
{
    public string Name { get; } = name;
    public ChatTemplateException Error() => new($"'{Name}' is undefined");
}

/// <summary>A Python tuple (a list that prints with parentheses).</summary>
sealed class PyTuple : List<object?>
{
    public PyTuple() { }
    public PyTuple(IEnumerable<object?> items) : base(items) { }
}

/// <summary>Jinja's namespace(): attributes assignable with {% set ns.x = ... %}.</summary>
sealed class Namespace
{
    public Dictionary<string, object?> Values { get; } = [];
}

sealed class CallArgs
{
    public List<object?> Positional { get; } = [];
    public Dictionary<string, object?> Named { get; } = [];

    /// <summary>Argument <paramref name="index"/> by position or by <paramref name="name"/>; <paramref name="missing"/> when absent.</summary>
    public object? Get(int index, string name, object? missing = null) =>
        index < Positional.Count ? Positional[index] : Named.TryGetValue(name, out var v) ? v : missing;

    public bool Has(int index, string name) => index < Positional.Count || Named.ContainsKey(name);
}

/// <summary>A built-in function or bound method.</summary>
sealed class PyFunction(string name, Func<CallArgs, object?> body)
{
    public string Name { get; } = name;
    public object? Invoke(CallArgs a) => body(a);
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
sealed class LoopInfo(List<object?> items, int index)
{
    public object? Get(string name) => name switch
    {
        "index" => (long)index + 1,
        "index0" => (long)index,
        "revindex" => (long)(items.Count - index),
        "revindex0" => (long)(items.Count - index - 1),
        "first" => index == 0,
        "last" => index == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => index > 0 ? items[index - 1] : new Undefined("loop.previtem"),
        "nextitem" => index + 1 < items.Count ? items[index + 1] : new Undefined("loop.nextitem"),
        "cycle" => new PyFunction("loop.cycle", a => a.Positional.Count == 0 ? throw new ChatTemplateException("no items for cycling given") : a.Positional[index % a.Positional.Count]),
        "changed" => new PyFunction("loop.changed", _ => throw new ChatTemplateException("loop.changed() is not supported")),
        _ => new Undefined("loop." + name),
    };
}

/// <summary>Python semantics of the values a template works on: null (None), bool, long, double, string,
/// List (list), PyTuple, Dictionary&lt;string, object?&gt; (dict), Namespace, LoopInfo, PyFunction, Macro, Undefined.</summary>
static class Py
{
    // ---- conversion from .NET ----

    public static object? FromDotNet(object? v) => v switch
    {
        null => null,
        string or bool or long or double or Undefined or Namespace or PyFunction or Macro => v,
        int i => (long)i,
        short or byte or sbyte or ushort or uint => Convert.ToInt64(v, CultureInfo.InvariantCulture),
        ulong u => u <= long.MaxValue ? (object)(long)u : (double)u,
        float f => (double)f,
        decimal m => m == decimal.Truncate(m) && Math.Abs(m) < long.MaxValue ? (object)(long)m : (double)m,
        char c => c.ToString(),
        JsonElement e => FromJson(e),
        JsonNode n => FromJson(JsonSerializer.Deserialize<JsonElement>(n.ToJsonString())),
        ChatMessage m => FromMessage(m),
        ChatToolCall t => FromToolCall(t),
        IDictionary d => FromDictionary(d),
        IEnumerable<KeyValuePair<string, object?>> kv => kv.ToDictionary(p => p.Key, p => FromDotNet(p.Value)),
        IEnumerable e => e.Cast<object?>().Select(FromDotNet).ToList(),
        _ => throw new ChatTemplateException($"a value of type {v.GetType().Name} cannot be passed to a chat template"),
    };

    static Dictionary<string, object?> FromDictionary(IDictionary d)
    {
        var r = new Dictionary<string, object?>();
        foreach (DictionaryEntry e in d) r[Key(FromDotNet(e.Key))] = FromDotNet(e.Value);
        return r;
    }

    public static object? FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var d = new Dictionary<string, object?>();
                foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value);
                return d;
            case JsonValueKind.Array:
                var l = new List<object?>();
                foreach (var x in e.EnumerateArray()) l.Add(FromJson(x));
                return l;
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.Number: return e.TryGetInt64(out var i) && !e.GetRawText().Contains('.') && !e.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase) ? (object)i : e.GetDouble();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            default: return null;
        }
    }

    public static Dictionary<string, object?> FromMessage(ChatMessage m)
    {
        var d = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };
        if (m.ToolCalls is { Count: > 0 } calls) d["tool_calls"] = calls.Select(c => (object?)FromToolCall(c)).ToList();
        if (m.Name is not null) d["name"] = m.Name;
        if (m.ToolCallId is not null) d["tool_call_id"] = m.ToolCallId;
        if (m.ReasoningContent is not null) d["reasoning_content"] = m.ReasoningContent;
        return d;
    }

    static Dictionary<string, object?> FromToolCall(ChatToolCall t)
    {
        object? args = t.Arguments;
        try
        {
            using var doc = JsonDocument.Parse(t.Arguments);
            if (doc.RootElement.ValueKind == JsonValueKind.Object) args = FromJson(doc.RootElement);
        }
        catch (JsonException) { }
        return new Dictionary<string, object?>
        {
            ["id"] = t.Id,
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?> { ["name"] = t.Name, ["arguments"] = args },
        };
    }

    // ---- truth, text ----

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>Python's str(): what {{ x }} prints.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => StrRepr(s),
        PyTuple t => t.Count == 1 ? $"({Repr(t[0])},)" : "(" + string.Join(", ", t.Select(Repr)) + ")",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(p => StrRepr(p.Key) + ": " + Repr(p.Value))) + "}",
        Namespace n => "<Namespace " + Repr(n.Values) + ">",
        LoopInfo => "<LoopContext>",
        PyFunction f => $"<function {f.Name}>",
        Macro m => $"<Macro '{m.Name}'>",
        _ => v.ToString() ?? "",
    };

    static string StrRepr(string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(q);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == q) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append(q).ToString();
    }

    /// <summary>Python's repr of a float: shortest round-trip digits, exponent form outside 1e-4 &lt;= |x| &lt; 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest round trip: "R" gives the digits; recompute the exponent ourselves.
        string shortest = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        string mant = shortest, expPart = "0";
        int ei = shortest.IndexOfAny(['E', 'e']);
        if (ei >= 0) { mant = shortest[..ei]; expPart = shortest[(ei + 1)..]; }
        int exp = int.Parse(expPart, CultureInfo.InvariantCulture);
        int dot = mant.IndexOf('.');
        string digits = dot < 0 ? mant : mant.Remove(dot, 1);
        int pointPos = (dot < 0 ? mant.Length : dot) + exp; // decimal point after this many digits
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int sciExp = pointPos - 1;
        string sign = d < 0 ? "-" : "";
        if (sciExp >= 16 || sciExp < -4)
        {
            string m = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return $"{sign}{m}e{(sciExp < 0 ? "-" : "+")}{Math.Abs(sciExp):00}";
        }
        if (pointPos <= 0) return sign + "0." + new string('0', -pointPos) + digits;
        if (pointPos >= digits.Length) return sign + digits + new string('0', pointPos - digits.Length) + ".0";
        return sign + digits[..pointPos] + "." + digits[pointPos..];
    }

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        PyTuple => "tuple",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        Namespace => "Namespace",
        _ => "object",
    };

    public static string Key(object? k) => k is string s ? s : Str(k);

    // ---- comparison ----

    public static new bool Equals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        if (a is string sa && b is string sb) return sa == sb;
        if (a is List<object?> la && b is List<object?> lb)
        {
            if ((a is PyTuple) != (b is PyTuple) || la.Count != lb.Count) return false;
            for (int i = 0; i < la.Count; i++) if (!Equals(la[i], lb[i])) return false;
            return true;
        }
        if (a is Dictionary<string, object?> da && b is Dictionary<string, object?> db)
        {
            if (da.Count != db.Count) return false;
            foreach (var (k, v) in da) if (!db.TryGetValue(k, out var w) || !Equals(v, w)) return false;
            return true;
        }
        return ReferenceEquals(a, b);
    }

    public static bool Compare(string op, object? a, object? b) => op switch
    {
        "==" => Equals(a, b),
        "!=" => !Equals(a, b),
        "in" => Contains(b, a),
        "not in" => !Contains(b, a),
        _ => Order(op, a, b),
    };

    static bool Order(string op, object? a, object? b)
    {
        int c;
        if (IsNumber(a) && IsNumber(b)) c = ToDouble(a).CompareTo(ToDouble(b));
        else if (a is string sa && b is string sb) c = string.CompareOrdinal(sa, sb);
        else throw new ChatTemplateException($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
        return op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
    }

    public static int CompareForSort(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a).CompareTo(ToDouble(b));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        if (a is null && b is null) return 0;
        throw new ChatTemplateException($"'<' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new ChatTemplateException($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        List<object?> l => l.Exists(x => Equals(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        Undefined => false,
        _ => throw new ChatTemplateException($"argument of type '{TypeName(container)}' is not iterable"),
    };

    // ---- numbers ----

    public static bool IsNumber(object? v) => v is long or double or bool;
    public static double ToDouble(object? v) => v switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => throw NotNumber(v) };
    public static long ToLong(object? v) => v switch { long l => l, double d => (long)d, bool b => b ? 1 : 0, _ => throw NotNumber(v) };
    static ChatTemplateException NotNumber(object? v) => v is Undefined u ? u.Error() : new($"expected a number, got '{TypeName(v)}'");

    public static object? Number(object? v, string what) => IsNumber(v) ? (v is bool b ? (b ? 1L : 0L) : v) : throw (v is Undefined u ? u.Error() : new ChatTemplateException($"bad operand type for {what}: '{TypeName(v)}'"));

    public static object? Negate(object? v) => Number(v, "unary -") switch { long l => -l, double d => -d, var x => x };

    public static object? Arithmetic(string op, object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
        if (IsNumber(a) && IsNumber(b))
        {
            bool ints = a is not double && b is not double;
            switch (op)
            {
                case "+": return ints ? (object)(ToLong(a) + ToLong(b)) : (object)(ToDouble(a) + ToDouble(b));
                case "-": return ints ? (object)(ToLong(a) - ToLong(b)) : (object)(ToDouble(a) - ToDouble(b));
                case "*": return ints ? (object)(ToLong(a) * ToLong(b)) : (object)(ToDouble(a) * ToDouble(b));
                case "/":
                    if (ToDouble(b) == 0) throw new ChatTemplateException("division by zero");
                    return ToDouble(a) / ToDouble(b);
                case "//":
                    if (ToDouble(b) == 0) throw new ChatTemplateException("integer division or modulo by zero");
                    if (ints) { long x = ToLong(a), y = ToLong(b), q = x / y; return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q; }
                    return Math.Floor(ToDouble(a) / ToDouble(b));
                case "%":
                    if (ToDouble(b) == 0) throw new ChatTemplateException("integer division or modulo by zero");
                    if (ints) { long x = ToLong(a), y = ToLong(b), r = x % y; return r != 0 && (r < 0) != (y < 0) ? r + y : r; }
                    { double x = ToDouble(a), y = ToDouble(b), r = x % y; return r != 0 && (r < 0) != (y < 0) ? r + y : r; }
                case "**":
                    if (ints && ToLong(b) >= 0) { long r = 1, x = ToLong(a); for (long k = ToLong(b); k > 0; k--) r *= x; return r; }
                    return Math.Pow(ToDouble(a), ToDouble(b));
            }
        }
        if (op == "+")
        {
            if (a is string sa && b is string sb) return sa + sb;
            if (a is List<object?> la && b is List<object?> lb && (a is PyTuple) == (b is PyTuple))
            {
                var r = a is PyTuple ? new PyTuple(la) : new List<object?>(la);
                r.AddRange(lb);
                return r;
            }
        }
        if (op == "*")
        {
            if (a is string s && b is long n) return n <= 0 ? "" : new StringBuilder().Insert(0, s, (int)n).ToString();
            if (a is long n2 && b is string s2) return n2 <= 0 ? "" : new StringBuilder().Insert(0, s2, (int)n2).ToString();
            if (a is List<object?> l && b is long n3)
            {
                var r = new List<object?>();
                for (long k = 0; k < n3; k++) r.AddRange(l);
                return r;
            }
        }
        throw new ChatTemplateException($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    // ---- access ----

    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined u: throw u.Error();
            case Dictionary<string, object?> d:
                if (Builtins.DictMethod(d, name) is { } dm) return dm;
                return d.TryGetValue(name, out var v) ? v : new Undefined(name);
            case Namespace n: return n.Values.TryGetValue(name, out var nv) ? nv : new Undefined(name);
            case LoopInfo loop: return loop.Get(name);
            case string s: return (object?)Builtins.StringMethod(s, name) ?? new Undefined(name);
            case List<object?> l: return (object?)Builtins.ListMethod(l, name) ?? new Undefined(name);
            default: return new Undefined(name);
        }
    }

    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined u: throw u.Error();
            case Dictionary<string, object?> d:
                if (key is string ks && d.TryGetValue(ks, out var v)) return v;
                if (key is not string && key is not null && d.TryGetValue(Key(key), out var v2)) return v2;
                return key is string k2 ? GetAttr(obj, k2) : new Undefined(Str(key));
            case List<object?> l when key is long or bool:
            {
                long i = ToLong(key);
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : new Undefined($"list index {ToLong(key)}");
            }
            case string s when key is long or bool:
            {
                long i = ToLong(key);
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : new Undefined($"string index {ToLong(key)}");
            }
            case Namespace or LoopInfo or string or List<object?> when key is string name: return GetAttr(obj, name);
            default: return new Undefined(Str(key));
        }
    }

    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        if (obj is Undefined u) throw u.Error();
        long st = step is null or Undefined ? 1 : ToLong(step);
        if (st == 0) throw new ChatTemplateException("slice step cannot be zero");
        int len = obj switch { string s => s.Length, List<object?> l => l.Count, _ => throw new ChatTemplateException($"'{TypeName(obj)}' object is not subscriptable") };
        long Norm(object? x, long dflt, long lo, long hi)
        {
            if (x is null or Undefined) return dflt;
            long v = ToLong(x);
            if (v < 0) v += len;
            return Math.Clamp(v, lo, hi);
        }
        long a = st > 0 ? Norm(start, 0, 0, len) : Norm(start, len - 1, -1, len - 1);
        long b = st > 0 ? Norm(stop, len, 0, len) : Norm(stop, -1, -1, len - 1);
        var idx = new List<int>();
        if (st > 0) for (long i = a; i < b; i += st) idx.Add((int)i);
        else for (long i = a; i > b; i += st) idx.Add((int)i);
        if (obj is string str)
        {
            var sb = new StringBuilder(idx.Count);
            foreach (var i in idx) sb.Append(str[i]);
            return sb.ToString();
        }
        var list = (List<object?>)obj!;
        var r = obj is PyTuple ? new PyTuple() : new List<object?>(idx.Count);
        foreach (var i in idx) r.Add(list[i]);
        return r;
    }

    public static object? Call(object? f, CallArgs a, string name) => f switch
    {
        PyFunction p => p.Invoke(a),
        Macro m => m.Invoke(a),
        Undefined u => throw u.Error(),
        _ => throw new ChatTemplateException($"'{name}' ({TypeName(f)}) is not callable"),
    };

    public static IEnumerable<object?> Iterate(object? v) => v switch
    {
        Undefined => [],
        List<object?> l => l.ToList(),
        Dictionary<string, object?> d => d.Keys.Cast<object?>().ToList(),
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        _ => throw new ChatTemplateException($"'{TypeName(v)}' object is not iterable"),
    };

    public static int Length(object? v) => v switch
    {
        Undefined => 0,
        string s => s.Length,
        ICollection c => c.Count,
        Namespace n => n.Values.Count,
        _ => throw new ChatTemplateException($"object of type '{TypeName(v)}' has no len()"),
    };
}
