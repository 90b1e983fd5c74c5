using System.Globalization;
using System.Net;
using System.Text;

namespace Memory3.Engine.Tokenization.ChatTemplates;

delegate object? Filter(object? value, CallArgs args, Scope scope);
delegate bool Test(object? value, CallArgs args);

/// <summary>Jinja's built-in filters, tests and globals, Python's str/dict methods, and the globals transformers adds
/// (<c>raise_exception</c>, <c>strftime_now</c>, its <c>tojson</c>).</summary>
static class Builtins
{
    // ---- globals ----

    public static void AddGlobals(Scope s, TimeProvider time)
    {
        s.Set("raise_exception", new PyFunction("raise_exception", a =>
            throw new ChatTemplateException(Py.Str(a.Get(0, "message", "")), raisedByTemplate: true)));
        s.Set("strftime_now", new PyFunction("strftime_now", a => Strftime(time.GetLocalNow().DateTime, Py.Str(a.Get(0, "format", "")))));
        s.Set("namespace", new PyFunction("namespace", a =>
        {
            var n = new Namespace();
            foreach (var p in a.Positional)
                if (p is Dictionary<string, object?> d) foreach (var (k, v) in d) n.Values[k] = v;
            foreach (var (k, v) in a.Named) n.Values[k] = v;
            return n;
        }));
        s.Set("range", new PyFunction("range", a =>
        {
            long start = 0, stop, step = 1;
            if (a.Positional.Count == 1) stop = Py.ToLong(a.Positional[0]);
            else
            {
                start = Py.ToLong(a.Get(0, "start", 0L));
                stop = Py.ToLong(a.Get(1, "stop", 0L));
                step = Py.ToLong(a.Get(2, "step", 1L));
            }
            if (step == 0) throw new ChatTemplateException("range() arg 3 must not be zero");
            var r = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                if (r.Count > 100_000) throw new ChatTemplateException("range() too large");
                r.Add(i);
            }
            return r;
        }));
        s.Set("dict", new PyFunction("dict", a =>
        {
            var d = new Dictionary<string, object?>();
            foreach (var p in a.Positional)
                if (p is Dictionary<string, object?> pd) foreach (var (k, v) in pd) d[k] = v;
            foreach (var (k, v) in a.Named) d[k] = v;
            return d;
        }));
    }

    /// <summary>Python's strftime for the codes chat templates use (%d %b %Y %B %m %y %H %M %S %p %I %a %A %j %-d %-m %e %%).</summary>
    public static string Strftime(DateTime t, string fmt)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            char c = fmt[++i];
            bool noPad = false;
            if (c == '-' && i + 1 < fmt.Length) { noPad = true; c = fmt[++i]; }
            string two(int v) => noPad ? v.ToString(ci) : v.ToString("00", ci);
            sb.Append(c switch
            {
                'd' => two(t.Day),
                'e' => t.Day.ToString(ci).PadLeft(2),
                'm' => two(t.Month),
                'Y' => t.Year.ToString(ci),
                'y' => two(t.Year % 100),
                'b' or 'h' => t.ToString("MMM", ci),
                'B' => t.ToString("MMMM", ci),
                'a' => t.ToString("ddd", ci),
                'A' => t.ToString("dddd", ci),
                'H' => two(t.Hour),
                'I' => two(t.Hour % 12 == 0 ? 12 : t.Hour % 12),
                'M' => two(t.Minute),
                'S' => two(t.Second),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => noPad ? t.DayOfYear.ToString(ci) : t.DayOfYear.ToString("000", ci),
                'w' => ((int)t.DayOfWeek).ToString(ci),
                'F' => t.ToString("yyyy-MM-dd", ci),
                'T' => t.ToString("HH:mm:ss", ci),
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + c,
            });
        }
        return sb.ToString();
    }

    // ---- methods ----

    public static PyFunction? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => new PyFunction("items", _ => Items(d)),
        "keys" => new PyFunction("keys", _ => d.Keys.Cast<object?>().ToList()),
        "values" => new PyFunction("values", _ => d.Values.ToList()),
        "get" => new PyFunction("get", a => d.TryGetValue(Py.Key(a.Get(0, "key")), out var v) ? v : a.Get(1, "default")),
        _ => null,
    };

    static List<object?> Items(Dictionary<string, object?> d) => d.Select(p => (object?)new PyTuple([p.Key, p.Value])).ToList();

    public static PyFunction? ListMethod(List<object?> l, string name) => name switch
    {
        "index" => new PyFunction("index", a =>
        {
            int i = l.FindIndex(x => Py.Equals(x, a.Get(0, "value")));
            return i >= 0 ? (long)i : throw new ChatTemplateException($"{Py.Repr(a.Get(0, "value"))} is not in list");
        }),
        "count" => new PyFunction("count", a => (long)l.Count(x => Py.Equals(x, a.Get(0, "value")))),
        _ => null,
    };

    public static PyFunction? StringMethod(string s, string name) => name switch
    {
        "strip" => new PyFunction(name, a => Strip(s, a.Get(0, "chars"), true, true)),
        "lstrip" => new PyFunction(name, a => Strip(s, a.Get(0, "chars"), true, false)),
        "rstrip" => new PyFunction(name, a => Strip(s, a.Get(0, "chars"), false, true)),
        "split" => new PyFunction(name, a => Split(s, a.Get(0, "sep"), Py.ToLong(a.Get(1, "maxsplit", -1L)))),
        "rsplit" => new PyFunction(name, a => RSplit(s, a.Get(0, "sep"), Py.ToLong(a.Get(1, "maxsplit", -1L)))),
        "splitlines" => new PyFunction(name, _ => s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).ToList() is var l && s.EndsWith('\n') ? l.Take(l.Count - 1).ToList() : l),
        "startswith" => new PyFunction(name, a => Affix(a.Get(0, "prefix"), p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => new PyFunction(name, a => Affix(a.Get(0, "suffix"), p => s.EndsWith(p, StringComparison.Ordinal))),
        "replace" => new PyFunction(name, a => Replace(s, Py.Str(a.Get(0, "old")), Py.Str(a.Get(1, "new")), Py.ToLong(a.Get(2, "count", -1L)))),
        "upper" => new PyFunction(name, _ => s.ToUpperInvariant()),
        "lower" => new PyFunction(name, _ => s.ToLowerInvariant()),
        "title" => new PyFunction(name, _ => Title(s)),
        "capitalize" => new PyFunction(name, _ => Capitalize(s)),
        "find" => new PyFunction(name, a => (long)s.IndexOf(Py.Str(a.Get(0, "sub")), StringComparison.Ordinal)),
        "count" => new PyFunction(name, a => (long)CountOf(s, Py.Str(a.Get(0, "sub")))),
        "join" => new PyFunction(name, a => string.Join(s, Py.Iterate(a.Get(0, "iterable")).Select(x => x is string xs ? xs : throw new ChatTemplateException($"join expects strings, got '{Py.TypeName(x)}'")))),
        "isdigit" => new PyFunction(name, _ => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => new PyFunction(name, _ => s.Length > 0 && s.All(char.IsLetter)),
        "isspace" => new PyFunction(name, _ => s.Length > 0 && s.All(char.IsWhiteSpace)),
        "islower" => new PyFunction(name, _ => s.Any(char.IsLetter) && s == s.ToLowerInvariant()),
        "isupper" => new PyFunction(name, _ => s.Any(char.IsLetter) && s == s.ToUpperInvariant()),
        _ => null,
    };

    static bool Affix(object? arg, Func<string, bool> test) => arg switch
    {
        string p => test(p),
        List<object?> l => l.Exists(x => test(Py.Str(x))),
        _ => throw new ChatTemplateException($"startswith/endswith first arg must be str or a tuple of str, not {Py.TypeName(arg)}"),
    };

    public static string Strip(string s, object? chars, bool left, bool right)
    {
        if (chars is null or Undefined)
            return left && right ? s.Trim() : left ? s.TrimStart() : s.TrimEnd();
        var set = Py.Str(chars).ToCharArray();
        return left && right ? s.Trim(set) : left ? s.TrimStart(set) : s.TrimEnd(set);
    }

    static List<object?> Split(string s, object? sep, long max)
    {
        var r = new List<object?>();
        if (sep is null or Undefined)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (max >= 0 && r.Count == max) { r.Add(s[i..].TrimEnd()); break; }
                int st = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
                r.Add(s[st..i]);
            }
            return r;
        }
        string sp = Py.Str(sep);
        if (sp.Length == 0) throw new ChatTemplateException("empty separator");
        int pos = 0;
        while (max < 0 || r.Count < max)
        {
            int k = s.IndexOf(sp, pos, StringComparison.Ordinal);
            if (k < 0) break;
            r.Add(s[pos..k]);
            pos = k + sp.Length;
        }
        r.Add(s[pos..]);
        return r;
    }

    static List<object?> RSplit(string s, object? sep, long max)
    {
        if (max < 0 || sep is null or Undefined) return Split(s, sep, max);
        string sp = Py.Str(sep);
        var r = new List<object?>();
        int end = s.Length;
        while (r.Count < max)
        {
            int k = end - sp.Length < 0 ? -1 : s.LastIndexOf(sp, end - 1, StringComparison.Ordinal);
            if (k < 0 || k + sp.Length > end) break;
            r.Insert(0, s[(k + sp.Length)..end]);
            end = k;
        }
        r.Insert(0, s[..end]);
        return r;
    }

    static string Replace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? InsertEverywhere(s, @new) : s.Replace(old, @new, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int pos = 0;
        for (long n = 0; n < count; n++)
        {
            int k = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (k < 0 || old.Length == 0) break;
            sb.Append(s, pos, k - pos).Append(@new);
            pos = k + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    static string InsertEverywhere(string s, string ins)
    {
        var sb = new StringBuilder(ins);
        foreach (char c in s) sb.Append(c).Append(ins);
        return sb.ToString();
    }

    static int CountOf(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        int n = 0;
        for (int k = s.IndexOf(sub, StringComparison.Ordinal); k >= 0; k = s.IndexOf(sub, k + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            sb.Append(prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    // ---- filters ----

    public static readonly Dictionary<string, Filter> Filters = new()
    {
        ["abs"] = (v, _, _) => Py.Number(v, "abs") switch { long l => Math.Abs(l), double d => Math.Abs(d), var x => x },
        ["attr"] = (v, a, _) => Py.GetAttr(v, Py.Str(a.Get(0, "name"))),
        ["capitalize"] = (v, _, _) => Capitalize(Py.Str(v)),
        ["count"] = (v, _, _) => (long)Py.Length(v),
        ["length"] = (v, _, _) => (long)Py.Length(v),
        ["default"] = Default,
        ["d"] = Default,
        ["dictsort"] = (v, a, _) => v is Dictionary<string, object?> d
            ? Items(d).OrderBy(p => ((PyTuple)p!)[Py.Truthy(a.Get(2, "by", "key")) && Py.Str(a.Get(2, "by", "key")) == "value" ? 1 : 0], Comparer<object?>.Create(Py.CompareForSort)).ToList()
            : throw new ChatTemplateException("dictsort expects a mapping"),
        ["escape"] = (v, _, _) => Escape(v),
        ["e"] = (v, _, _) => Escape(v),
        ["forceescape"] = (v, _, _) => Escape(v),
        ["first"] = (v, _, _) => Py.Iterate(v).Take(1).ToList() is [var f] ? f : new Undefined("first"),
        ["last"] = (v, _, _) => Py.Iterate(v).ToList() is { Count: > 0 } l ? l[^1] : new Undefined("last"),
        ["float"] = (v, a, _) => ToFloat(v, a.Get(0, "default", 0.0)),
        ["int"] = (v, a, _) => ToInt(v, a.Get(0, "default", 0L)),
        ["indent"] = Indent,
        ["items"] = (v, _, _) => v switch
        {
            Undefined => new List<object?>(),
            Dictionary<string, object?> d => Items(d),
            _ => throw new ChatTemplateException($"can only get item pairs from a mapping, not '{Py.TypeName(v)}'"),
        },
        ["join"] = (v, a, s) =>
        {
            var items = Py.Iterate(v);
            if (a.Get(1, "attribute") is { } attr and not Undefined) items = items.Select(x => Lookup(x, attr)).ToList();
            return string.Join(Py.Str(a.Get(0, "d", "")), items.Select(Py.Str));
        },
        ["list"] = (v, _, _) => Py.Iterate(v).ToList(),
        ["lower"] = (v, _, _) => Py.Str(v).ToLowerInvariant(),
        ["upper"] = (v, _, _) => Py.Str(v).ToUpperInvariant(),
        ["title"] = (v, _, _) => Title(Py.Str(v)),
        ["map"] = Map,
        ["select"] = (v, a, s) => Select(v, a, attr: false, keep: true),
        ["reject"] = (v, a, s) => Select(v, a, attr: false, keep: false),
        ["selectattr"] = (v, a, s) => Select(v, a, attr: true, keep: true),
        ["rejectattr"] = (v, a, s) => Select(v, a, attr: true, keep: false),
        ["max"] = (v, a, _) => MinMax(v, a, max: true),
        ["min"] = (v, a, _) => MinMax(v, a, max: false),
        ["replace"] = (v, a, _) => Replace(Py.Str(v), Py.Str(a.Get(0, "old")), Py.Str(a.Get(1, "new")), a.Get(2, "count") is long c ? c : -1),
        ["reverse"] = (v, _, _) => v is string str ? new string(str.Reverse().ToArray()) : Py.Iterate(v).Reverse().ToList(),
        ["round"] = (v, a, _) =>
        {
            int prec = (int)Py.ToLong(a.Get(0, "precision", 0L));
            string method = Py.Str(a.Get(1, "method", "common"));
            double d = Py.ToDouble(v), f = Math.Pow(10, prec);
            return method switch
            {
                "ceil" => Math.Ceiling(d * f) / f,
                "floor" => Math.Floor(d * f) / f,
                _ => Math.Round(d * f, MidpointRounding.ToEven) / f, // Python round(): half to even
            };
        },
        ["safe"] = (v, _, _) => v,
        ["sort"] = Sort,
        ["string"] = (v, _, _) => Py.Str(v),
        ["sum"] = (v, a, _) =>
        {
            object? total = a.Get(1, "start", 0L);
            var attr = a.Get(0, "attribute");
            foreach (var x in Py.Iterate(v)) total = Py.Arithmetic("+", total, attr is null or Undefined ? x : Lookup(x, attr));
            return total;
        },
        ["tojson"] = (v, a, _) => PyJson.Dumps(v,
            indent: a.Get(0, "indent") is long n ? (int)n : null,
            ensureAscii: Py.Truthy(a.Get(1, "ensure_ascii", false)),
            separators: a.Get(2, "separators") is List<object?> { Count: 2 } sep ? (Py.Str(sep[0]), Py.Str(sep[1])) : null,
            sortKeys: Py.Truthy(a.Get(3, "sort_keys", false))),
        ["trim"] = (v, a, _) => Strip(Py.Str(v), a.Get(0, "chars"), true, true),
        ["unique"] = (v, _, _) =>
        {
            var r = new List<object?>();
            foreach (var x in Py.Iterate(v)) if (!r.Exists(y => Py.Equals(x, y))) r.Add(x);
            return r;
        },
        ["wordcount"] = (v, _, _) => (long)Split(Py.Str(v), null, -1).Count,
        ["center"] = (v, a, _) =>
        {
            string str = Py.Str(v);
            int w = (int)Py.ToLong(a.Get(0, "width", 80L));
            if (w <= str.Length) return str;
            int left = (w - str.Length) / 2 + ((w - str.Length) % 2 & w % 2);
            return new string(' ', left) + str + new string(' ', w - str.Length - left);
        },
    };

    static object? Default(object? v, CallArgs a, Scope s)
    {
        bool boolean = Py.Truthy(a.Get(1, "boolean", false));
        return v is Undefined || (boolean && !Py.Truthy(v)) ? a.Get(0, "default_value", "") : v;
    }

    static string Escape(object? v) => v is string s
        ? s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;")
        : Escape(Py.Str(v));

    static object? ToFloat(object? v, object? dflt) => v switch
    {
        double d => d,
        long or bool => Py.ToDouble(v),
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => dflt,
    };

    static object? ToInt(object? v, object? dflt) => v switch
    {
        long or bool => Py.ToLong(v),
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim().Replace("_", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => (long)Math.Truncate(d),
        _ => dflt,
    };

    static object? Indent(object? v, CallArgs a, Scope s)
    {
        var w = a.Get(0, "width", 4L);
        string pad = w is string ws ? ws : new string(' ', (int)Py.ToLong(w));
        bool first = Py.Truthy(a.Get(1, "first", false)), blank = Py.Truthy(a.Get(2, "blank", false));
        var lines = Py.Str(v).Split('\n');
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Length; i++)
        {
            if (i > 0) sb.Append('\n');
            if ((i > 0 || first) && (blank || lines[i].Trim().Length > 0)) sb.Append(pad);
            sb.Append(lines[i]);
        }
        return sb.ToString();
    }

    /// <summary>Jinja's attribute lookup for filters: "a.b" walks items, digits index lists.</summary>
    static object? Lookup(object? x, object? attribute)
    {
        if (attribute is long i) return Py.GetItem(x, i);
        foreach (var part in Py.Str(attribute).Split('.'))
        {
            if (x is Undefined) return x;
            x = long.TryParse(part, out var n) ? Py.GetItem(x, n) : Py.GetItem(x, part);
        }
        return x;
    }

    static object? Map(object? v, CallArgs a, Scope s)
    {
        var items = Py.Truthy(v) ? Py.Iterate(v) : []; // Jinja: `if value: for item in value`
        if (a.Named.TryGetValue("attribute", out var attr))
        {
            var dflt = a.Named.TryGetValue("default", out var dv) ? dv : null;
            bool hasDefault = a.Named.ContainsKey("default");
            return items.Select(x => Lookup(x, attr) is Undefined && hasDefault ? dflt : Lookup(x, attr)).ToList();
        }
        if (a.Positional.Count == 0) return items.ToList();
        string name = Py.Str(a.Positional[0]);
        if (!Filters.TryGetValue(name, out var f)) throw new ChatTemplateException($"no filter named '{name}'");
        var rest = new CallArgs();
        rest.Positional.AddRange(a.Positional.Skip(1));
        foreach (var (k, val) in a.Named) rest.Named[k] = val;
        return items.Select(x => f(x, rest, s)).ToList();
    }

    static object? Select(object? v, CallArgs a, bool attr, bool keep)
    {
        int k = 0;
        object? attribute = attr ? a.Get(k++, "attribute") : null;
        Test test = (x, _) => Py.Truthy(x);
        var targs = new CallArgs();
        if (k < a.Positional.Count)
        {
            string name = Py.Str(a.Positional[k++]);
            if (!Tests.TryGetValue(name, out test!)) throw new ChatTemplateException($"no test named '{name}'");
            targs.Positional.AddRange(a.Positional.Skip(k));
        }
        var r = new List<object?>();
        if (!Py.Truthy(v)) return r; // Jinja: `if seq: for item in seq`
        foreach (var x in Py.Iterate(v))
        {
            var subject = attr ? Lookup(x, attribute) : x;
            if (test(subject, targs) == keep) r.Add(x);
        }
        return r;
    }

    static object? MinMax(object? v, CallArgs a, bool max)
    {
        var items = Py.Iterate(v).ToList();
        if (items.Count == 0) return new Undefined(max ? "max" : "min");
        var attr = a.Get(1, "attribute");
        object? Key(object? x) => attr is null or Undefined ? x : Lookup(x, attr);
        var best = items[0];
        foreach (var x in items.Skip(1))
        {
            int c = Py.CompareForSort(Key(x), Key(best));
            if (max ? c > 0 : c < 0) best = x;
        }
        return best;
    }

    static object? Sort(object? v, CallArgs a, Scope s)
    {
        bool reverse = Py.Truthy(a.Get(0, "reverse", false));
        bool caseSensitive = Py.Truthy(a.Get(1, "case_sensitive", false));
        var attr = a.Get(2, "attribute");
        object? Key(object? x)
        {
            var k = attr is null or Undefined ? x : Lookup(x, attr);
            return !caseSensitive && k is string ks ? ks.ToLowerInvariant() : k;
        }
        var items = Py.Iterate(v).ToList();
        var sorted = items.OrderBy(Key, Comparer<object?>.Create(Py.CompareForSort)).ToList(); // stable, as Python's sort
        if (reverse) sorted = items.OrderByDescending(Key, Comparer<object?>.Create(Py.CompareForSort)).ToList();
        return sorted;
    }

    // ---- tests ----

    public static readonly Dictionary<string, Test> Tests = new()
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v is null,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["boolean"] = (v, _) => v is bool,
        ["string"] = (v, _) => v is string,
        ["number"] = (v, _) => Py.IsNumber(v),
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["mapping"] = (v, _) => v is Dictionary<string, object?>,
        ["sequence"] = (v, _) => v is string or List<object?> or Dictionary<string, object?>,
        ["iterable"] = (v, _) => v is string or List<object?> or Dictionary<string, object?> or Undefined,
        ["callable"] = (v, _) => v is PyFunction or Macro,
        ["odd"] = (v, _) => Py.ToLong(v) % 2 != 0,
        ["even"] = (v, _) => Py.ToLong(v) % 2 == 0,
        ["divisibleby"] = (v, a) => Py.ToLong(v) % Py.ToLong(a.Get(0, "num")) == 0,
        ["eq"] = (v, a) => Py.Equals(v, a.Get(0, "other")),
        ["equalto"] = (v, a) => Py.Equals(v, a.Get(0, "other")),
        ["=="] = (v, a) => Py.Equals(v, a.Get(0, "other")),
        ["ne"] = (v, a) => !Py.Equals(v, a.Get(0, "other")),
        ["!="] = (v, a) => !Py.Equals(v, a.Get(0, "other")),
        ["lt"] = (v, a) => Py.Compare("<", v, a.Get(0, "other")),
        ["<"] = (v, a) => Py.Compare("<", v, a.Get(0, "other")),
        ["le"] = (v, a) => Py.Compare("<=", v, a.Get(0, "other")),
        ["<="] = (v, a) => Py.Compare("<=", v, a.Get(0, "other")),
        ["gt"] = (v, a) => Py.Compare(">", v, a.Get(0, "other")),
        ["greaterthan"] = (v, a) => Py.Compare(">", v, a.Get(0, "other")),
        [">"] = (v, a) => Py.Compare(">", v, a.Get(0, "other")),
        ["ge"] = (v, a) => Py.Compare(">=", v, a.Get(0, "other")),
        [">="] = (v, a) => Py.Compare(">=", v, a.Get(0, "other")),
        ["in"] = (v, a) => Py.Contains(a.Get(0, "seq"), v),
        ["sameas"] = (v, a) => a.Get(0, "other") is var o && (v is null || v is bool || o is null || o is bool ? Py.Equals(v, o) && v?.GetType() == o?.GetType() : ReferenceEquals(v, o)),
        ["lower"] = (v, _) => v is string s && s == s.ToLowerInvariant(),
        ["upper"] = (v, _) => v is string s && s == s.ToUpperInvariant(),
        ["escaped"] = (_, _) => false,
    };
}
