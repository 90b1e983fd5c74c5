using Memory3.Engine.Memory.Retrieve;

namespace Memory3.Engine.Tests.Memory.Retrieve;

public class HybridRetrieverTests
{
    static readonly string[] Topics =
    [
        "The harbour office handles shipping permits and customs paperwork for cargo vessels.",
        "Annual rainfall in the valley peaks in late autumn when westerly winds bring storms.",
        "The orchestra rehearses symphonies on Tuesdays in the old concert hall downtown.",
        "Bakers knead the dough twice and let it rise overnight before baking bread.",
        "The railway line climbs through three tunnels before reaching the mountain station.",
        "Volunteers repaired the library roof after the winter storm damaged the tiles.",
        "The museum's new wing displays bronze age tools found near the river delta.",
        "Farmers rotate barley and clover to keep the soil rich in nitrogen.",
    ];

    static (string, string, string) R(string id, string ns, string text) => (id, ns, text);

    [Fact]
    public void Add_is_idempotent_by_id_and_remove_works()
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb);
        r.Add([R("a", "ns", Topics[0]), R("b", "ns", Topics[1])]);
        r.Add([R("a", "ns", Topics[0])]);
        Assert.Equal(2, r.Count);
        Assert.Equal(2, emb.TextsEmbedded); // the unchanged re-add embedded nothing
        r.Add([R("a", "ns", Topics[2])]);   // changed text replaces the entry
        Assert.Equal(2, r.Count);
        var hit = r.Search("orchestra rehearses symphonies", new RetrievalOptions { TopK = 1 })[0];
        Assert.Equal("a", hit.Id);
        Assert.True(r.Remove("a"));
        Assert.False(r.Remove("a"));
        Assert.Equal(1, r.Count);
        Assert.All(r.Search("orchestra rehearses symphonies", new RetrievalOptions { TopK = 5 }), h => Assert.NotEqual("a", h.Id));
        Assert.Empty(new HybridRetriever(emb).Search("anything", RetrievalOptions.Default));
    }

    [Fact]
    public void Fused_score_is_reciprocal_rank_fusion()
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb, new HybridRetrieverOptions { KeyTermBoost = 0 });
        // Dense order for the query: d1 > d2 > d3 (pinned vectors). Lexical order: d3 > d2 (d1 shares no word).
        const string q = "zebra quagga";
        emb.Pin(q, emb.Axis(0));
        emb.Pin("alpha beta", emb.Axis(0, 1, 0.1f));
        emb.Pin("zebra gamma", emb.Axis(0, 1, 0.5f));
        emb.Pin("zebra quagga delta", emb.Axis(0, 1, 1.5f));
        r.Add([R("d1", "n", "alpha beta"), R("d2", "n", "zebra gamma"), R("d3", "n", "zebra quagga delta")]);
        var hits = r.Search(q, new RetrievalOptions { TopK = 3 });
        double Rrf(params int[] ranks) => ranks.Sum(x => 1.0 / (60 + x));
        var byId = hits.ToDictionary(h => h.Id);
        Assert.Equal(Rrf(1), byId["d1"].Score, 9);          // dense rank 1 only
        Assert.Equal(Rrf(2, 2), byId["d2"].Score, 9);       // dense 2, lexical 2
        Assert.Equal(Rrf(3, 1), byId["d3"].Score, 9);       // dense 3, lexical 1
        Assert.Equal(["d3", "d2", "d1"], hits.Select(h => h.Id));
        Assert.All(hits, h => { Assert.NotNull(h.DenseScore); Assert.NotNull(h.LexicalScore); });
        Assert.True(byId["d1"].DenseScore > byId["d3"].DenseScore);
        Assert.Equal(0.0, byId["d1"].LexicalScore);

        Assert.Equal("d1", r.Search(q, new RetrievalOptions { TopK = 1, Mode = RetrievalMode.Dense })[0].Id);
        var lex = r.Search(q, new RetrievalOptions { TopK = 3, Mode = RetrievalMode.Lexical });
        Assert.Equal(["d3", "d2"], lex.Select(h => h.Id));
        Assert.All(lex, h => Assert.Null(h.DenseScore));
    }

    [Theory]
    [InlineData("What happened to the harbour office in 1987?", "In 1987 the harbour office moved to the old customs house by the pier.")]
    [InlineData("Which permits did Thorvaldsen sign at the harbour office?", "Thorvaldsen signed the cargo permits in the harbour office.")]
    public void A_rare_number_or_name_beats_a_dense_favourite(string query, string target)
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb);
        var refs = new List<(string, string, string)>();
        for (int i = 0; i < Topics.Length; i++) refs.Add(R("t" + i, "n", Topics[i]));
        for (int i = 0; i < 40; i++) refs.Add(R("f" + i, "n", $"Filler note {i} about the harbour office and the weekly permits schedule in {1900 + i}."));
        refs.Add(R("target", "n", target));
        // The dense ranking disagrees: the query's vector equals the first topic's, the target points elsewhere.
        emb.Pin(query, emb.Axis(3));
        emb.Pin(Topics[0], emb.Axis(3));
        emb.Pin(Topics[1], emb.Axis(3, 4, 0.3f));
        emb.Pin(Topics[2], emb.Axis(3, 4, 0.6f));
        emb.Pin(target, emb.Axis(5, 3, 0.2f));
        r.Add(refs);
        var dense = r.Search(query, new RetrievalOptions { TopK = 5, Mode = RetrievalMode.Dense });
        Assert.Equal("t0", dense[0].Id);
        Assert.True(dense.Select(h => h.Id).ToList().IndexOf("target") is < 0 or > 2);
        var hybrid = r.Search(query, new RetrievalOptions { TopK = 5 });
        Assert.Equal("target", hybrid[0].Id);
        Assert.Equal("target", r.Search(query, new RetrievalOptions { TopK = 1, Mode = RetrievalMode.Lexical })[0].Id);
    }

    [Fact]
    public void A_namespace_never_returns_another_namespaces_references()
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb);
        var refs = new List<(string, string, string)>();
        const string query = "bronze age tools found near the river delta museum";
        // 300 references in B that match the query best (lexically and densely), 30 unrelated ones in A.
        for (int i = 0; i < 300; i++) refs.Add(R("b" + i, "B", $"Museum wing {i}: bronze age tools found near the river delta."));
        for (int i = 0; i < 30; i++) refs.Add(R("a" + i, "A", Topics[i % Topics.Length] + $" Entry {i}."));
        r.Add(refs);
        foreach (var mode in Enum.GetValues<RetrievalMode>())
        {
            var hits = r.Search(query, new RetrievalOptions { TopK = 3, Namespaces = ["A"], Mode = mode });
            Assert.Equal(3, hits.Count);
            Assert.All(hits, h => Assert.Equal("A", h.Namespace));
            Assert.Contains("a6", hits.Select(h => h.Id).Take(3)); // the museum topic of A
            var all = r.Search(query, new RetrievalOptions { TopK = 3, Mode = mode });
            Assert.All(all, h => Assert.Equal("B", h.Namespace));
            var both = r.Search(query, new RetrievalOptions { TopK = 3, Namespaces = ["A", "B"], Mode = mode });
            Assert.All(both, h => Assert.Equal("B", h.Namespace));
        }
        Assert.Empty(r.Search(query, new RetrievalOptions { Namespaces = ["C"] }));
        Assert.Empty(r.Search(query, new RetrievalOptions { Namespaces = [] }));
    }

    [Fact]
    public void Overlap_filter_drops_references_that_copy_the_query()
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb);
        const string copy = "the railway line climbs through three tunnels before reaching the mountain station";
        r.Add([R("copy", "n", copy), R("near", "n", "Trains on the railway line need extra engines for the mountain station climb."),
               R("other", "n", Topics[3])]);
        var query = "Today the railway line climbs through three tunnels before reaching the mountain station, as it has since 1890.";
        Assert.Equal("copy", r.Search(query, new RetrievalOptions { TopK = 3 })[0].Id);
        var filtered = r.Search(query, new RetrievalOptions { TopK = 3, OverlapFilter = true });
        Assert.DoesNotContain("copy", filtered.Select(h => h.Id));
        Assert.Equal("near", filtered[0].Id);
        // With the threshold at 1 nothing is "more than" identical, so the copy stays.
        Assert.Contains("copy", r.Search(query, new RetrievalOptions { TopK = 3, OverlapFilter = true, OverlapThreshold = 1.0 }).Select(h => h.Id));
    }

    [Fact]
    public void SearchMany_matches_Search_and_embeds_once()
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb);
        r.Add(Topics.Select((t, i) => R("t" + i, i % 2 == 0 ? "even" : "odd", t)).ToList());
        string[] queries = ["bread dough rises overnight", "storms in autumn", "tunnels and a mountain station"];
        var opts = new RetrievalOptions { TopK = 2, Namespaces = ["even", "odd"] };
        int calls = emb.Calls;
        var many = r.SearchMany(queries, opts);
        Assert.Equal(calls + 1, emb.Calls);
        for (int i = 0; i < queries.Length; i++)
            Assert.Equal(r.Search(queries[i], opts).Select(h => (h.Id, h.Score)), many[i].Select(h => (h.Id, h.Score)));
        Assert.Equal("t3", many[0][0].Id);
    }

    [Fact]
    public void Save_and_open_round_trip_and_stale_indexes_are_rebuilt()
    {
        using var tmp = new TempDir();
        var emb = new FakeEmbedder();
        var records = Topics.Select((t, i) => R("t" + i, i < 4 ? "x" : "y", t)).ToList();
        string[] queries = ["bread dough rises overnight", "museum bronze tools", "storms in autumn"];
        var opts = new RetrievalOptions { TopK = 3 };
        List<List<(string, double)>> before;
        using (var r = HybridRetriever.Open(tmp.Path, emb))
        {
            Assert.True(r.NeedsRebuild);
            Assert.Equal("no index", r.NeedsRebuildReason);
            r.Rebuild(records);
            Assert.False(r.NeedsRebuild);
            r.Remove("t7");
            r.Add([R("t7", "y", Topics[7])]); // a removed and re-added key, and a tombstone in the HNSW graph
            r.Save();
            before = queries.Select(q => r.Search(q, opts).Select(h => (h.Id, h.Score)).ToList()).ToList();
        }
        Assert.True(File.Exists(Path.Combine(tmp.Path, "index", "manifest.json")));
        int embedded = emb.TextsEmbedded;
        using (var r = HybridRetriever.Open(tmp.Path, emb))
        {
            Assert.False(r.NeedsRebuild, r.NeedsRebuildReason);
            Assert.Equal(8, r.Count);
            Assert.True(r.IsInSync(records));
            for (int i = 0; i < queries.Length; i++)
                Assert.Equal(before[i], r.Search(queries[i], opts).Select(h => (h.Id, h.Score)).ToList());
            r.Add([R("new", "y", "A brand new reference about lighthouses.")]);
            Assert.Equal("new", r.Search("lighthouses", new RetrievalOptions { TopK = 1 })[0].Id);
        }
        // Opening needed no embedding except the query texts; one more reference changed in the store.
        records[2] = R("t2", "x", "The choir sings hymns in the cathedral every Sunday.");
        int afterOpen = emb.TextsEmbedded;
        using (var r = HybridRetriever.OpenOrRebuild(tmp.Path, emb, () => records))
        {
            Assert.Equal(afterOpen + 1, emb.TextsEmbedded); // only the changed text was re-embedded
            Assert.True(r.IsInSync(records));
            Assert.Equal("t2", r.Search("choir hymns cathedral", new RetrievalOptions { TopK = 1 })[0].Id);
        }
        Assert.True(embedded > 0);
        // Another embedder model: stale.
        using (var r = HybridRetriever.Open(tmp.Path, new FakeEmbedder(modelId: "other")))
        {
            Assert.True(r.NeedsRebuild);
            Assert.Contains("other", r.NeedsRebuildReason);
            Assert.Equal(0, r.Count);
        }
        // Damaged files: stale, not an exception.
        File.WriteAllText(Path.Combine(tmp.Path, "index", "refs.bin"), "garbage");
        using (var r = HybridRetriever.Open(tmp.Path, emb))
            Assert.True(r.NeedsRebuild);
        File.Delete(Path.Combine(tmp.Path, "index", "dense-0.usearch"));
        using (var r = HybridRetriever.Open(tmp.Path, emb))
            Assert.True(r.NeedsRebuild);
    }

    [Fact]
    public void Concurrent_searches_and_adds_do_not_interfere()
    {
        var emb = new FakeEmbedder();
        using var r = new HybridRetriever(emb);
        r.Add(Topics.Select((t, i) => R("t" + i, "n", t)).ToList());
        var adder = Task.Run(() => { for (int i = 0; i < 200; i++) r.Add([R("x" + i, "m", $"extra reference number {i} about ferries")]); });
        Parallel.For(0, 200, i =>
        {
            var hits = r.Search("bakers knead dough", new RetrievalOptions { TopK = 1, Namespaces = ["n"] });
            Assert.Equal("t3", hits[0].Id);
        });
        adder.Wait();
        Assert.Equal(208, r.Count);
    }
}
