using Memory3.Engine.Memory;
using Memory3.Engine.Memory.Ingest;
using Memory3.Engine.Model;
using Memory3.Engine.Tokenization;
using Memory3.Engine.Training;

namespace Memory3.Engine.Tests.Training;

/// <summary>
/// A guard on the whole memory path of the shipped model (encoding, selection, the bank, retrieval, memory attention):
/// over held-out questions, reading memory must raise the log-probability of the right answer above what the model
/// gives it without memory. A memory path that is ignored, scrambled or mispositioned loses that margin.
/// </summary>
public class ShippedModelMemoryTests
{
    [Fact]
    public void MemoryRaisesTheLikelihoodOfHeldOutAnswers()
    {
        string dir = Path.Combine(Repo.Root, "models/memory3-tiny");
        var tokenizer = TokenizerLoader.Load(dir);
        using var model = CausalLM.Load(dir);
        using var tmp = new TempDir();
        using var bank = MemoryBank.Open(tmp.Path, model, tokenizer);
        var ingested = bank.Ingest(new DocumentReader().Read([Path.Combine(dir, TrainRecipe.HeldOutFile)]), "default");
        Assert.True(ingested.References >= 100, $"{ingested.References} references");
        var eval = new FactsEval(model, tokenizer);
        var questions = FactsEval.LoadQuestions(Path.Combine(dir, TrainRecipe.FactsFile), 24);
        double withMemory = 0, without = 0;
        int better = 0;
        foreach (var q in questions)
        {
            var prompt = eval.ChatPrompt(null, q.Question);
            var answer = tokenizer.Encode(" " + q.Answer, addSpecialTokens: false);
            double m = eval.AnswerLogProb(prompt, answer, bank), n = eval.AnswerLogProb(prompt, answer, null);
            withMemory += m; without += n;
            if (m > n) better++;
        }
        withMemory /= questions.Count; without /= questions.Count;
        Assert.True(withMemory > without + Margin, $"mean log-probability with memory {withMemory:F3}, without {without:F3}; better on {better}/{questions.Count}");
        Assert.True(better > questions.Count / 2, $"memory raised the right answer on only {better}/{questions.Count} questions");
    }

    /// <summary>Nats by which memory must raise the mean: about half of what the shipped model shows (docs/benchmarks.md).</summary>
    private const double Margin = 0.2;
}
