namespace Memory3.Engine.Tokenization.ChatTemplates;

/// <summary>Builds statements from lexed segments. Block tags are matched by a recursive descent over segments; expressions by one over a tag's tokens.</summary>
sealed class TemplateParser
{
    readonly List<Segment> segs;
    int si;

    TemplateParser(List<Segment> segs) => this.segs = segs;

    public static List<Stmt> Parse(string source)
    {
        var p = new TemplateParser(TemplateLexer.Lex(source));
        var body = p.ParseBody([], out var end);
        if (end is not null) throw p.Error(end.Tokens[0], $"unexpected '{end.Tokens[0].Text}'");
        return body;
    }

    // ---- statements ----

    /// <summary>Parses until a block tag whose first word is in <paramref name="enders"/> (returned, not consumed past) or the end.</summary>
    List<Stmt> ParseBody(string[] enders, out Segment? end)
    {
        var body = new List<Stmt>();
        while (si < segs.Count)
        {
            var seg = segs[si];
            switch (seg.Kind)
            {
                case SegmentKind.Text:
                    si++;
                    if (seg.Text.Length > 0) body.Add(new TextStmt(seg.Line, seg.Text));
                    break;
                case SegmentKind.Comment:
                    si++;
                    break;
                case SegmentKind.Output:
                {
                    si++;
                    if (seg.Tokens.Count == 0) throw new ChatTemplateException("empty expression", seg.Line, seg.Column);
                    var c = new Cursor(seg);
                    var e = ParseExpression(c);
                    c.ExpectEnd();
                    body.Add(new OutputStmt(seg.Line, e));
                    break;
                }
                case SegmentKind.Block:
                {
                    if (seg.Tokens.Count == 0 || seg.Tokens[0].Kind != TokenKind.Name)
                        throw new ChatTemplateException("block tag must start with a keyword", seg.Line, seg.Column);
                    string word = seg.Tokens[0].Text;
                    if (Array.IndexOf(enders, word) >= 0) { end = seg; return body; }
                    si++;
                    body.Add(ParseBlock(seg, word));
                    break;
                }
            }
        }
        end = null;
        if (enders.Length > 0)
        {
            var last = segs.Count > 0 ? segs[^1] : null;
            throw new ChatTemplateException($"unexpected end of template, expected '{enders[^1]}'", last?.Line ?? 1, null);
        }
        return body;
    }

    Stmt ParseBlock(Segment seg, string word)
    {
        var c = new Cursor(seg);
        c.Next();
        switch (word)
        {
            case "if": return ParseIf(seg, c);
            case "for": return ParseFor(seg, c);
            case "set": return ParseSet(seg, c);
            case "macro": return ParseMacro(seg, c);
            case "call": return ParseCallBlock(seg, c);
            case "filter":
            {
                var filters = ParseFilterChain(c, first: true);
                c.ExpectEnd();
                var body = ParseBody(["endfilter"], out var end);
                CloseTag(end!);
                return new FilterBlockStmt(seg.Line, filters, body);
            }
            case "break" or "continue":
                c.ExpectEnd();
                return new LoopControlStmt(seg.Line, word == "break" ? Flow.Break : Flow.Continue);
            case "do":
            {
                var e = ParseExpression(c);
                c.ExpectEnd();
                return new DoStmt(seg.Line, e);
            }
            case "generation":
            {
                c.ExpectEnd();
                var body = ParseBody(["endgeneration"], out var end);
                CloseTag(end!);
                return new BlockStmt(seg.Line, body);
            }
            case "else" or "elif" or "endif" or "endfor" or "endset" or "endmacro" or "endcall" or "endfilter" or "endgeneration" or "endraw":
                throw new ChatTemplateException($"unexpected '{word}'", seg.Line, seg.Column);
            default:
                throw new ChatTemplateException($"unsupported tag '{word}'", seg.Line, seg.Column);
        }
    }

    void CloseTag(Segment end)
    {
        si++;
        var c = new Cursor(end);
        c.Next();
        c.ExpectEnd();
    }

    Stmt ParseIf(Segment seg, Cursor c)
    {
        var branches = new List<(Expr, List<Stmt>)>();
        var cond = ParseExpression(c);
        c.ExpectEnd();
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out var end);
            branches.Add((cond, body));
            si++;
            var ec = new Cursor(end!);
            string w = ec.Next().Text;
            if (w == "elif")
            {
                cond = ParseExpression(ec);
                ec.ExpectEnd();
                continue;
            }
            ec.ExpectEnd();
            if (w == "endif") return new IfStmt(seg.Line, branches, null);
            var otherwise = ParseBody(["endif"], out var end2);
            CloseTag(end2!);
            return new IfStmt(seg.Line, branches, otherwise);
        }
    }

    Stmt ParseFor(Segment seg, Cursor c)
    {
        var targets = new List<string> { c.ExpectName() };
        while (c.TryOp(",")) targets.Add(c.ExpectName());
        if (!c.TryName("in")) throw Error(c.PeekOrEnd(), "expected 'in'");
        var iter = ParseTernaryFree(c);
        Expr? filter = null;
        if (c.TryName("if")) filter = ParseExpression(c);
        if (c.TryName("recursive")) throw Error(c.Prev, "recursive loops are not supported");
        c.ExpectEnd();
        var body = ParseBody(["else", "endfor"], out var end);
        si++;
        var ec = new Cursor(end!);
        string w = ec.Next().Text;
        ec.ExpectEnd();
        List<Stmt>? otherwise = null;
        if (w == "else")
        {
            otherwise = ParseBody(["endfor"], out var end2);
            CloseTag(end2!);
        }
        return new ForStmt(seg.Line, targets, iter, filter, body, otherwise);
    }

    Stmt ParseSet(Segment seg, Cursor c)
    {
        var first = c.ExpectName();
        if (c.TryOp("."))
        {
            var attr = c.ExpectName();
            c.ExpectOp("=");
            var v = ParseTupleOrExpression(c);
            c.ExpectEnd();
            return new SetStmt(seg.Line, [first], attr, v);
        }
        var targets = new List<string> { first };
        while (c.TryOp(",")) targets.Add(c.ExpectName());
        if (c.TryOp("="))
        {
            var v = ParseTupleOrExpression(c);
            c.ExpectEnd();
            return new SetStmt(seg.Line, targets, null, v);
        }
        if (targets.Count != 1) throw Error(c.PeekOrEnd(), "expected '='");
        var filters = c.AtEnd ? [] : ParseFilterChain(c, first: false);
        c.ExpectEnd();
        var body = ParseBody(["endset"], out var end);
        CloseTag(end!);
        return new SetBlockStmt(seg.Line, first, filters, body);
    }

    Stmt ParseMacro(Segment seg, Cursor c)
    {
        var name = c.ExpectName();
        var ps = ParseSignature(c);
        c.ExpectEnd();
        var body = ParseBody(["endmacro"], out var end);
        CloseTag(end!);
        return new MacroStmt(seg.Line, name, ps, body);
    }

    Stmt ParseCallBlock(Segment seg, Cursor c)
    {
        var ps = c.PeekIs("(") ? ParseSignature(c) : [];
        var e = ParseExpression(c);
        if (e is not CallExpr call) throw Error(c.PeekOrEnd(), "expected a macro call");
        c.ExpectEnd();
        var body = ParseBody(["endcall"], out var end);
        CloseTag(end!);
        return new CallBlockStmt(seg.Line, call, ps, body);
    }

    List<(string, Expr?)> ParseSignature(Cursor c)
    {
        var ps = new List<(string, Expr?)>();
        c.ExpectOp("(");
        while (!c.TryOp(")"))
        {
            if (ps.Count > 0) c.ExpectOp(",");
            if (c.TryOp(")")) break;
            var n = c.ExpectName();
            Expr? def = c.TryOp("=") ? ParseExpression(c) : null;
            ps.Add((n, def));
        }
        return ps;
    }

    List<FilterExpr> ParseFilterChain(Cursor c, bool first)
    {
        var list = new List<FilterExpr>();
        if (!first) c.ExpectOp("|");
        do
        {
            var t = c.Peek();
            var name = ParseDottedName(c);
            var args = c.PeekIs("(") ? ParseCallArgs(c) : new Args();
            list.Add(new FilterExpr(t.Line, null, name, args));
        } while (c.TryOp("|"));
        return list;
    }

    // ---- expressions (Jinja's precedence) ----

    Expr ParseTupleOrExpression(Cursor c)
    {
        var first = ParseExpression(c);
        if (!c.PeekIs(",")) return first;
        var items = new List<Expr> { first };
        while (c.TryOp(","))
        {
            if (c.AtEnd) break;
            items.Add(ParseExpression(c));
        }
        return new ListExpr(first.Line, items, tuple: true);
    }

    Expr ParseExpression(Cursor c)
    {
        var e = ParseOr(c);
        while (c.TryName("if"))
        {
            var cond = ParseOr(c);
            Expr? otherwise = c.TryName("else") ? ParseExpression(c) : null;
            e = new ConditionalExpr(e.Line, cond, e, otherwise);
        }
        return e;
    }

    /// <summary>For a for-loop's iterable: no conditional expression (its 'if' is the loop filter).</summary>
    Expr ParseTernaryFree(Cursor c) => ParseOr(c);

    Expr ParseOr(Cursor c)
    {
        var e = ParseAnd(c);
        while (c.TryName("or")) e = new BinaryExpr(e.Line, "or", e, ParseAnd(c));
        return e;
    }

    Expr ParseAnd(Cursor c)
    {
        var e = ParseNot(c);
        while (c.TryName("and")) e = new BinaryExpr(e.Line, "and", e, ParseNot(c));
        return e;
    }

    Expr ParseNot(Cursor c)
    {
        if (c.PeekName("not"))
        {
            var t = c.Next();
            return new UnaryExpr(t.Line, "not", ParseNot(c));
        }
        return ParseCompare(c);
    }

    Expr ParseCompare(Cursor c)
    {
        var first = ParseMath1(c);
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var t = c.PeekOrEnd();
            string? op = null;
            if (t.Kind == TokenKind.Operator && t.Text is "==" or "!=" or "<" or ">" or "<=" or ">=") { c.Next(); op = t.Text; }
            else if (t.IsName("in")) { c.Next(); op = "in"; }
            else if (t.IsName("not") && c.PeekAt(1) is { } n && n.IsName("in")) { c.Next(); c.Next(); op = "not in"; }
            if (op is null) break;
            rest.Add((op, ParseMath1(c)));
        }
        return rest.Count == 0 ? first : new CompareExpr(first.Line, first, rest);
    }

    Expr ParseMath1(Cursor c)
    {
        var e = ParseConcat(c);
        while (c.PeekIs("+") || c.PeekIs("-"))
        {
            var op = c.Next().Text;
            e = new BinaryExpr(e.Line, op, e, ParseConcat(c));
        }
        return e;
    }

    Expr ParseConcat(Cursor c)
    {
        var e = ParseMath2(c);
        while (c.TryOp("~")) e = new BinaryExpr(e.Line, "~", e, ParseMath2(c));
        return e;
    }

    Expr ParseMath2(Cursor c)
    {
        var e = ParsePow(c);
        while (c.PeekIs("*") || c.PeekIs("/") || c.PeekIs("//") || c.PeekIs("%"))
        {
            var op = c.Next().Text;
            e = new BinaryExpr(e.Line, op, e, ParsePow(c));
        }
        return e;
    }

    Expr ParsePow(Cursor c)
    {
        var e = ParseUnary(c, withFilter: true);
        while (c.TryOp("**")) e = new BinaryExpr(e.Line, "**", e, ParseUnary(c, withFilter: true));
        return e;
    }

    Expr ParseUnary(Cursor c, bool withFilter)
    {
        Expr e;
        if (c.PeekIs("-") || c.PeekIs("+"))
        {
            var t = c.Next();
            e = new UnaryExpr(t.Line, t.Text, ParseUnary(c, withFilter: false));
        }
        else e = ParsePostfix(c, ParsePrimary(c));
        return withFilter ? ParseFilterAndTest(c, e) : e;
    }

    Expr ParseFilterAndTest(Cursor c, Expr e)
    {
        while (true)
        {
            if (c.TryOp("|"))
            {
                var t = c.Peek();
                var name = ParseDottedName(c);
                var args = c.PeekIs("(") ? ParseCallArgs(c) : new Args();
                e = new FilterExpr(t.Line, e, name, args);
            }
            else if (c.PeekName("is"))
            {
                c.Next();
                bool negate = c.TryName("not");
                var t = c.Peek();
                var name = ParseDottedName(c);
                Args args;
                if (c.PeekIs("(")) args = ParseCallArgs(c);
                else
                {
                    args = new Args();
                    // One bare argument: `x is divisibleby 3`, `x is sameas false`.
                    var n = c.PeekOrEnd();
                    bool startsArg = n.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float || n.Is("[") || n.Is("{")
                        || (n.Kind == TokenKind.Name && n.Text is not ("else" or "or" or "and" or "if" or "is" or "in" or "not") && !c.AtEnd);
                    if (startsArg && !c.AtEnd) args.Positional.Add(ParsePostfix(c, ParsePrimary(c)));
                }
                e = new TestExpr(t.Line, e, name, args, negate);
            }
            else return e;
        }
    }

    string ParseDottedName(Cursor c)
    {
        var name = c.ExpectName();
        while (c.PeekIs(".") && c.PeekAt(1) is { Kind: TokenKind.Name })
        {
            c.Next();
            name += "." + c.Next().Text;
        }
        return name;
    }

    Expr ParsePrimary(Cursor c)
    {
        var t = c.Next();
        switch (t.Kind)
        {
            case TokenKind.String:
            {
                var s = (string)t.Value!;
                while (c.PeekOrEnd().Kind == TokenKind.String && !c.AtEnd) s += (string)c.Next().Value!; // 'a' 'b' concatenates
                return new LiteralExpr(t.Line, s);
            }
            case TokenKind.Integer:
            case TokenKind.Float:
                return new LiteralExpr(t.Line, t.Value);
            case TokenKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new LiteralExpr(t.Line, true),
                    "false" or "False" => new LiteralExpr(t.Line, false),
                    "none" or "None" => new LiteralExpr(t.Line, null),
                    _ => new NameExpr(t.Line, t.Text),
                };
        }
        if (t.Is("("))
        {
            if (c.TryOp(")")) return new ListExpr(t.Line, [], tuple: true);
            var e = ParseExpression(c);
            if (c.PeekIs(","))
            {
                var items = new List<Expr> { e };
                while (c.TryOp(","))
                {
                    if (c.PeekIs(")")) break;
                    items.Add(ParseExpression(c));
                }
                e = new ListExpr(t.Line, items, tuple: true);
            }
            c.ExpectOp(")");
            return e;
        }
        if (t.Is("["))
        {
            var items = new List<Expr>();
            while (!c.TryOp("]"))
            {
                if (items.Count > 0) { c.ExpectOp(","); if (c.TryOp("]")) break; }
                items.Add(ParseExpression(c));
            }
            return new ListExpr(t.Line, items, tuple: false);
        }
        if (t.Is("{"))
        {
            var items = new List<(Expr, Expr)>();
            while (!c.TryOp("}"))
            {
                if (items.Count > 0) { c.ExpectOp(","); if (c.TryOp("}")) break; }
                var k = ParseExpression(c);
                c.ExpectOp(":");
                items.Add((k, ParseExpression(c)));
            }
            return new DictExpr(t.Line, items);
        }
        throw Error(t, $"unexpected {t}");
    }

    Expr ParsePostfix(Cursor c, Expr e)
    {
        while (true)
        {
            if (c.PeekIs("."))
            {
                var dot = c.Next();
                var n = c.Next();
                if (n.Kind == TokenKind.Name) e = new AttrExpr(dot.Line, e, n.Text);
                else if (n.Kind == TokenKind.Integer) e = new ItemExpr(dot.Line, e, new LiteralExpr(n.Line, n.Value));
                else throw Error(n, $"expected an attribute name, got {n}");
            }
            else if (c.PeekIs("["))
            {
                var open = c.Next();
                Expr? a = null, b = null, step = null;
                bool slice = false;
                if (!c.PeekIs(":")) a = ParseExpression(c);
                if (c.TryOp(":"))
                {
                    slice = true;
                    if (!c.PeekIs(":") && !c.PeekIs("]")) b = ParseExpression(c);
                    if (c.TryOp(":") && !c.PeekIs("]")) step = ParseExpression(c);
                }
                c.ExpectOp("]");
                e = slice ? new SliceExpr(open.Line, e, a, b, step) : new ItemExpr(open.Line, e, a!);
            }
            else if (c.PeekIs("("))
            {
                var line = c.Peek().Line;
                e = new CallExpr(line, e, ParseCallArgs(c));
            }
            else return e;
        }
    }

    Args ParseCallArgs(Cursor c)
    {
        var args = new Args();
        c.ExpectOp("(");
        bool first = true;
        while (!c.TryOp(")"))
        {
            if (!first) { c.ExpectOp(","); if (c.TryOp(")")) break; }
            first = false;
            if (c.PeekIs("*") || c.PeekIs("**")) throw Error(c.Peek(), "*args and **kwargs in calls are not supported");
            if (c.PeekOrEnd().Kind == TokenKind.Name && c.PeekAt(1) is { } eq && eq.Is("="))
            {
                var n = c.Next().Text;
                c.Next();
                args.Named.Add((n, ParseExpression(c)));
            }
            else
            {
                if (args.Named.Count > 0) throw Error(c.PeekOrEnd(), "positional argument after keyword argument");
                args.Positional.Add(ParseExpression(c));
            }
        }
        return args;
    }

    ChatTemplateException Error(Token t, string what) => new(what, t.Line, t.Column);

    /// <summary>Reads the tokens of one tag.</summary>
    sealed class Cursor(Segment seg)
    {
        int i;
        public bool AtEnd => i >= seg.Tokens.Count;
        public Token Prev => seg.Tokens[i - 1];

        /// <summary>The next token, or a pseudo token at the tag's end (so errors can name a position).</summary>
        public Token PeekOrEnd() => AtEnd ? EndToken() : seg.Tokens[i];
        public Token? PeekAt(int k) => i + k < seg.Tokens.Count ? seg.Tokens[i + k] : null;

        public Token Peek() => AtEnd ? throw new ChatTemplateException("unexpected end of tag", EndToken().Line, EndToken().Column) : seg.Tokens[i];
        public Token Next() { var t = Peek(); i++; return t; }
        public bool PeekIs(string op) => !AtEnd && seg.Tokens[i].Is(op);
        public bool PeekName(string n) => !AtEnd && seg.Tokens[i].IsName(n);
        public bool TryOp(string op) { if (!PeekIs(op)) return false; i++; return true; }
        public bool TryName(string n) { if (!PeekName(n)) return false; i++; return true; }

        public void ExpectOp(string op)
        {
            var t = PeekOrEnd();
            if (AtEnd || !t.Is(op)) throw new ChatTemplateException(AtEnd ? $"expected '{op}' before the end of the tag" : $"expected '{op}', got {t}", t.Line, t.Column);
            i++;
        }

        public string ExpectName()
        {
            var t = PeekOrEnd();
            if (AtEnd || t.Kind != TokenKind.Name) throw new ChatTemplateException(AtEnd ? "expected a name before the end of the tag" : $"expected a name, got {t}", t.Line, t.Column);
            i++;
            return t.Text;
        }

        public void ExpectEnd()
        {
            if (!AtEnd) { var t = seg.Tokens[i]; throw new ChatTemplateException($"unexpected {t}", t.Line, t.Column); }
        }

        Token EndToken()
        {
            var last = seg.Tokens.Count > 0 ? seg.Tokens[^1] : new Token(TokenKind.Operator, "", null, seg.Line, seg.Column);
            return new Token(TokenKind.Operator, "end of tag", null, last.Line, last.Column + last.Text.Length);
        }
    }
}
