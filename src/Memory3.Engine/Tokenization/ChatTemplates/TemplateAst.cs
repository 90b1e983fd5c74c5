using System.Text;

namespace Memory3.Engine.Tokenization.ChatTemplates;

// ---- expressions -------------------------------------------------------------------------------------------------

abstract class Expr(int line)
{
    public int Line { get; } = line;
    public abstract object? Eval(Scope s);
}

sealed class LiteralExpr(int line, object? value) : Expr(line)
{
    public object? Value { get; } = value;
    public override object? Eval(Scope s) => Value;
}

sealed class NameExpr(int line, string name) : Expr(line)
{
    public string Name { get; } = name;
    public override object? Eval(Scope s) => s.TryGet(Name, out var v) ? v : new Undefined(Name);
}

sealed class ListExpr(int line, List<Expr> items, bool tuple) : Expr(line)
{
    public List<Expr> Items { get; } = items;
    public override object? Eval(Scope s)
    {
        var list = tuple ? new PyTuple() : new List<object?>(Items.Count);
        foreach (var e in Items) list.Add(e.Eval(s));
        return list;
    }
}

sealed class DictExpr(int line, List<(Expr Key, Expr Value)> items) : Expr(line)
{
    public override object? Eval(Scope s)
    {
        var d = new Dictionary<string, object?>();
        foreach (var (k, v) in items) d[Py.Key(k.Eval(s))] = v.Eval(s);
        return d;
    }
}

sealed class AttrExpr(int line, Expr obj, string name) : Expr(line)
{
    public override object? Eval(Scope s) => Py.GetAttr(obj.Eval(s), name);
}

sealed class ItemExpr(int line, Expr obj, Expr index) : Expr(line)
{
    public override object? Eval(Scope s) => Py.GetItem(obj.Eval(s), index.Eval(s));
}

sealed class SliceExpr(int line, Expr obj, Expr? start, Expr? stop, Expr? step) : Expr(line)
{
    public override object? Eval(Scope s) => Py.Slice(obj.Eval(s), start?.Eval(s), stop?.Eval(s), step?.Eval(s));
}

sealed class Args
{
    public List<Expr> Positional { get; } = [];
    public List<(string Name, Expr Value)> Named { get; } = [];

    public CallArgs Eval(Scope s)
    {
        var a = new CallArgs();
        foreach (var e in Positional) a.Positional.Add(e.Eval(s));
        foreach (var (n, e) in Named) a.Named[n] = e.Eval(s);
        return a;
    }
}

sealed class CallExpr(int line, Expr callee, Args args) : Expr(line)
{
    public Expr Callee { get; } = callee;
    public Args Args { get; } = args;
    public override object? Eval(Scope s) => Py.Call(Callee.Eval(s), Args.Eval(s), Callee is NameExpr n ? n.Name : "object");
}

sealed class FilterExpr(int line, Expr? value, string name, Args args) : Expr(line)
{
    public string Name { get; } = name;
    /// <summary>Null only inside a {% filter %} block, which supplies the value.</summary>
    public object? Apply(object? v, Scope s)
    {
        if (!Builtins.Filters.TryGetValue(Name, out var f)) throw new ChatTemplateException($"no filter named '{Name}'", Line);
        return f(v, args.Eval(s), s);
    }
    public override object? Eval(Scope s) => Apply(value!.Eval(s), s);
}

sealed class TestExpr(int line, Expr value, string name, Args args, bool negate) : Expr(line)
{
    public override object? Eval(Scope s)
    {
        if (!Builtins.Tests.TryGetValue(name, out var t)) throw new ChatTemplateException($"no test named '{name}'", Line);
        return t(value.Eval(s), args.Eval(s)) != negate;
    }
}

sealed class UnaryExpr(int line, string op, Expr operand) : Expr(line)
{
    public override object? Eval(Scope s)
    {
        var v = operand.Eval(s);
        return op switch
        {
            "not" => !Py.Truthy(v),
            "-" => Py.Negate(v),
            _ => Py.Number(v, "unary +"),
        };
    }
}

sealed class BinaryExpr(int line, string op, Expr left, Expr right) : Expr(line)
{
    public override object? Eval(Scope s)
    {
        switch (op)
        {
            case "and": { var l = left.Eval(s); return Py.Truthy(l) ? right.Eval(s) : l; }
            case "or": { var l = left.Eval(s); return Py.Truthy(l) ? l : right.Eval(s); }
            case "~": return Py.Str(left.Eval(s)) + Py.Str(right.Eval(s));
            default: return Py.Arithmetic(op, left.Eval(s), right.Eval(s));
        }
    }
}

sealed class CompareExpr(int line, Expr first, List<(string Op, Expr Right)> rest) : Expr(line)
{
    public override object? Eval(Scope s)
    {
        var l = first.Eval(s);
        foreach (var (op, re) in rest)
        {
            var r = re.Eval(s);
            if (!Py.Compare(op, l, r)) return false;
            l = r;
        }
        return true;
    }
}

sealed class ConditionalExpr(int line, Expr cond, Expr then, Expr? otherwise) : Expr(line)
{
    public override object? Eval(Scope s) =>
        Py.Truthy(cond.Eval(s)) ? then.Eval(s) : otherwise is null ? new Undefined("conditional expression") : otherwise.Eval(s);
}

// ---- statements --------------------------------------------------------------------------------------------------

enum Flow { Normal, Break, Continue }

abstract class Stmt(int line)
{
    public int Line { get; } = line;
    public abstract Flow Exec(Scope s, StringBuilder o);

    public static Flow ExecAll(List<Stmt> body, Scope s, StringBuilder o)
    {
        foreach (var st in body)
        {
            Flow f;
            try { f = st.Exec(s, o); }
            catch (ChatTemplateException) { throw; }
            catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException or ArgumentException or IndexOutOfRangeException)
            {
                throw new ChatTemplateException(e.Message, st.Line);
            }
            if (f != Flow.Normal) return f;
        }
        return Flow.Normal;
    }
}

sealed class TextStmt(int line, string text) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o) { o.Append(text); return Flow.Normal; }
}

sealed class OutputStmt(int line, Expr expr) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        try { o.Append(Py.Str(expr.Eval(s))); }
        catch (ChatTemplateException e) when (e.Line is null && !e.RaisedByTemplate) { throw new ChatTemplateException(e.Reason, Line); }
        return Flow.Normal;
    }
}

sealed class IfStmt(int line, List<(Expr Cond, List<Stmt> Body)> branches, List<Stmt>? otherwise) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        foreach (var (c, body) in branches)
            if (Py.Truthy(Located.Eval(c, s))) return ExecAll(body, s, o);
        return otherwise is null ? Flow.Normal : ExecAll(otherwise, s, o);
    }
}

sealed class ForStmt(int line, List<string> targets, Expr iter, Expr? filter, List<Stmt> body, List<Stmt>? otherwise) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        var items = new List<object?>();
        foreach (var item in Py.Iterate(Located.Eval(iter, s)))
        {
            if (filter is not null)
            {
                var fs = new Scope(s);
                Bind(fs, item);
                if (!Py.Truthy(Located.Eval(filter, fs))) continue;
            }
            items.Add(item);
        }
        if (items.Count == 0) return otherwise is null ? Flow.Normal : ExecAll(otherwise, s, o);
        for (int i = 0; i < items.Count; i++)
        {
            var inner = new Scope(s);
            Bind(inner, items[i]);
            inner.Set("loop", new LoopInfo(items, i));
            if (ExecAll(body, inner, o) == Flow.Break) break;
        }
        return Flow.Normal;
    }

    void Bind(Scope s, object? item)
    {
        if (targets.Count == 1) { s.Set(targets[0], item); return; }
        var parts = Py.Iterate(item).ToList();
        if (parts.Count != targets.Count)
            throw new ChatTemplateException($"cannot unpack {parts.Count} values into {targets.Count} loop variables", Line);
        for (int k = 0; k < targets.Count; k++) s.Set(targets[k], parts[k]);
    }
}

sealed class SetStmt(int line, List<string> targets, string? attribute, Expr value) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        var v = Located.Eval(value, s);
        if (attribute is not null)
        {
            if (!s.TryGet(targets[0], out var ns) || ns is not Namespace n)
                throw new ChatTemplateException($"cannot assign attribute on non-namespace object '{targets[0]}'", Line);
            n.Values[attribute] = v;
        }
        else if (targets.Count == 1) s.Set(targets[0], v);
        else
        {
            var parts = Py.Iterate(v).ToList();
            if (parts.Count != targets.Count) throw new ChatTemplateException($"cannot unpack {parts.Count} values into {targets.Count} names", Line);
            for (int k = 0; k < targets.Count; k++) s.Set(targets[k], parts[k]);
        }
        return Flow.Normal;
    }
}

sealed class SetBlockStmt(int line, string target, List<FilterExpr> filters, List<Stmt> body) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        var sb = new StringBuilder();
        ExecAll(body, s, sb);
        object? v = sb.ToString();
        foreach (var f in filters) v = f.Apply(v, s);
        s.Set(target, v);
        return Flow.Normal;
    }
}

sealed class FilterBlockStmt(int line, List<FilterExpr> filters, List<Stmt> body) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        var sb = new StringBuilder();
        ExecAll(body, s, sb);
        object? v = sb.ToString();
        foreach (var f in filters) v = f.Apply(v, s);
        o.Append(Py.Str(v));
        return Flow.Normal;
    }
}

sealed class MacroStmt(int line, string name, List<(string Name, Expr? Default)> parameters, List<Stmt> body) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        s.Set(name, new Macro(name, parameters, body, s));
        return Flow.Normal;
    }
}

sealed class CallBlockStmt(int line, CallExpr call, List<(string Name, Expr? Default)> callerParams, List<Stmt> body) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o)
    {
        var callee = Located.Eval(call.Callee, s);
        if (callee is not Macro m) throw new ChatTemplateException("{% call %} needs a macro", Line);
        var args = call.Args.Eval(s);
        var caller = new Macro("caller", callerParams, body, s);
        o.Append(m.Invoke(args, caller));
        return Flow.Normal;
    }
}

sealed class LoopControlStmt(int line, Flow flow) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o) => flow;
}

sealed class DoStmt(int line, Expr expr) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o) { Located.Eval(expr, s); return Flow.Normal; }
}

/// <summary>Bodies of {% generation %} (transformers' AssistantTracker) and similar transparent blocks.</summary>
sealed class BlockStmt(int line, List<Stmt> body) : Stmt(line)
{
    public override Flow Exec(Scope s, StringBuilder o) => ExecAll(body, s, o);
}

static class Located
{
    /// <summary>Evaluates, attaching the expression's line to an error that has none (template-raised errors keep their message).</summary>
    public static object? Eval(Expr e, Scope s)
    {
        try { return e.Eval(s); }
        catch (ChatTemplateException ex) when (ex.Line is null && !ex.RaisedByTemplate) { throw new ChatTemplateException(ex.Reason, e.Line); }
    }
}

// ---- runtime objects ---------------------------------------------------------------------------------------------

sealed class Scope(Scope? parent)
{
    readonly Dictionary<string, object?> vars = [];
    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s.vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => vars[name] = value;
}

/// <summary>A user-defined macro; calling it renders its body to a string.</summary>
sealed class Macro(string name, List<(string Name, Expr? Default)> parameters, List<Stmt> body, Scope closure)
{
    public string Name { get; } = name;

    public string Invoke(CallArgs args, Macro? caller = null)
    {
        var s = new Scope(closure);
        int k = 0;
        foreach (var (pname, def) in parameters)
        {
            object? v;
            if (k < args.Positional.Count) v = args.Positional[k];
            else if (args.Named.TryGetValue(pname, out var nv)) v = nv;
            else v = def is null ? new Undefined(pname) : def.Eval(s);
            s.Set(pname, v);
            k++;
        }
        var extra = new List<object?>();
        for (; k < args.Positional.Count; k++) extra.Add(args.Positional[k]);
        s.Set("varargs", extra);
        var kw = new Dictionary<string, object?>();
        foreach (var (n, v) in args.Named)
            if (!parameters.Exists(p => p.Name == n)) kw[n] = v;
        s.Set("kwargs", kw);
        if (caller is not null) s.Set("caller", caller);
        var sb = new StringBuilder();
        Stmt.ExecAll(body, s, sb);
        return sb.ToString();
    }
}
