using System.Diagnostics;
using Memory3.Engine.Memory.Retrieve;
using Xunit.Abstractions;

namespace Memory3.Engine.Tests.Memory.Retrieve;

/// <summary>One MiniLM (91 MB ONNX model) for every test in the class.</summary>
public sealed class MiniLmFixture : IDisposable
{
    public MiniLmEmbedder Embedder { get; } = new();
    public void Dispose() => Embedder.Dispose();
}

public class MiniLmRetrievalTests(MiniLmFixture fixture, ITestOutputHelper output) : IClassFixture<MiniLmFixture>
{
    static double Dot(float[] a, float[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }

    [Fact]
    public void Embeddings_are_unit_length_deterministic_and_batch_independent()
    {
        var e = fixture.Embedder;
        Assert.Equal(384, e.Dimensions);
        string[] texts = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome.",
            string.Join(' ', Enumerable.Repeat("a very long sentence that keeps going", 120))];
        var batch = e.Embed(texts);
        Assert.Equal(4, batch.Length);
        for (int i = 0; i < texts.Length; i++)
        {
            Assert.Equal(384, batch[i].Length);
            Assert.Equal(1.0, Math.Sqrt(Dot(batch[i], batch[i])), 4);
            var single = e.Embed([texts[i]])[0];
            Assert.True(Dot(single, batch[i]) > 0.9999, "padding in a batch must not change a text's vector");
        }
        Assert.True(Dot(batch[0], batch[1]) > Dot(batch[0], batch[2]) + 0.3);
        var ids = e.TokenIds(texts[3]);
        Assert.Equal(MiniLmEmbedder.MaxTokens, ids.Length);
        Assert.Equal(101, ids[0]);   // [CLS]
        Assert.Equal(102, ids[^1]);  // [SEP]
        Assert.Equal([101, 1037, 2158, 2003, 5983, 2833, 1012, 102], e.TokenIds("A man is eating food."));
    }

    [Fact]
    public void A_paraphrased_query_finds_its_reference_among_distractors()
    {
        using var r = new HybridRetriever(fixture.Embedder);
        var refs = new List<(string, string, string)>
        {
            ("cat", "kb", "The domestic cat sleeps for roughly two thirds of every day."),
            ("tide", "kb", "Ocean tides are caused mainly by the gravitational pull of the Moon."),
            ("bread", "kb", "Sourdough bread rises because wild yeast and bacteria ferment the dough."),
            ("volcano", "kb", "Magma that reaches the surface of the Earth is called lava."),
            ("heart", "kb", "The human heart pumps blood through the body via arteries and veins."),
            ("chess", "kb", "In chess, castling moves the king two squares towards a rook."),
            ("rain", "kb", "Rainbows appear when sunlight is refracted inside falling raindrops."),
            ("python", "kb", "Python is a programming language known for its readable syntax."),
            ("mars", "kb", "Mars looks red because iron oxide dust covers its surface."),
            ("bees", "kb", "Honey bees communicate the location of flowers with a waggle dance."),
        };
        for (int i = 0; i < 40; i++) refs.Add(($"filler{i}", "kb", $"Meeting note {i}: the quarterly budget review was moved to room {100 + i}."));
        r.Add(refs);
        (string Query, string Expected)[] cases =
        [
            ("Why does the sea rise and fall twice a day?", "tide"),
            ("How long do house cats nap?", "cat"),
            ("What makes the red planet look rusty?", "mars"),
            ("How do insects tell each other where the nectar is?", "bees"),
            ("Which organ circulates our blood?", "heart"),
        ];
        var sw = Stopwatch.StartNew();
        var results = r.SearchMany(cases.Select(c => c.Query).ToArray(), new RetrievalOptions { TopK = 3 });
        output.WriteLine($"5 queries embedded and searched in {sw.Elapsed.TotalMilliseconds:F1} ms");
        for (int i = 0; i < cases.Length; i++)
        {
            output.WriteLine($"{cases[i].Query} -> {string.Join(", ", results[i].Select(h => $"{h.Id} {h.Score:F4} dense {h.DenseScore:F3} bm25 {h.LexicalScore:F2}"))}");
            // Dense alone ranks each first: these paraphrases share almost no words with their references.
            Assert.Equal(cases[i].Expected, r.Search(cases[i].Query, new RetrievalOptions { TopK = 1, Mode = RetrievalMode.Dense })[0].Id);
            // Fused, it stays among the retrieved; an incidental word match can outrank it under RRF ("day" puts the
            // cat reference above the tide one for the sea question), see docs/retrieval.md.
            Assert.Contains(cases[i].Expected, results[i].Select(h => h.Id));
        }
    }

    [Fact]
    public void With_a_real_embedder_a_year_in_the_query_finds_its_reference()
    {
        using var r = new HybridRetriever(fixture.Embedder);
        var refs = new List<(string, string, string)>();
        for (int y = 1950; y < 2000; y++)
            refs.Add(($"y{y}", "kb", $"In {y} the city council approved a new budget for the public library."));
        r.Add(refs);
        var hits = r.Search("What did the council decide about library funding in 1987?", new RetrievalOptions { TopK = 5 });
        output.WriteLine(string.Join(", ", hits.Select(h => $"{h.Id} {h.Score:F4} dense {h.DenseScore:F3} bm25 {h.LexicalScore:F2}")));
        Assert.Equal("y1987", hits[0].Id);
    }
}
