using System.Text;
using System.Text.RegularExpressions;

namespace Memory3.Engine.Training;

/// <summary>One attribute of an entity: its key (e.g. <c>birthplace</c>) and its value as text.</summary>
public sealed record Fact(string Attribute, string Value);

/// <summary>A person, city, organisation, book or invention of a synthetic world, with its facts.</summary>
public sealed record Entity(string Kind, string Name, IReadOnlyList<Fact> Facts);

/// <summary>A question about one fact, with the exact value that answers it.</summary>
public sealed record FactQuestion(string Question, string Answer, string EntityName, string Attribute);

/// <summary>
/// A synthetic knowledge world generated deterministically from a seed (issue 5). Every entity name and attribute
/// value is a made-up word built from a shared syllable inventory, so two worlds speak the same sub-word language
/// while their names and values are disjoint: <see cref="Generate"/> draws all worlds from one name stream, and a
/// name is never used twice. Years are split between worlds so that no year occurs in two.
/// Facts are rendered through varied sentence templates into references (one per fact), passages,
/// questions with answers, and chat dialogues.
/// </summary>
public sealed class KnowledgeWorld
{
    public string Name { get; }
    public IReadOnlyList<Entity> Entities { get; }
    private readonly Dictionary<string, Entity> _byName;

    private KnowledgeWorld(string name, List<Entity> entities)
    {
        Name = name;
        Entities = entities;
        _byName = entities.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public Entity this[string name] => _byName[name];

    /// <summary>Every made-up word this world uses (entity names and non-numeric values), for disjointness checks.</summary>
    public IEnumerable<string> Words() => Entities.SelectMany(e => e.Name.Split(' ').Concat(e.Facts.SelectMany(f => f.Value.Split(' '))))
        .Where(w => !w.All(char.IsDigit)).Distinct(StringComparer.Ordinal);

    // ---------------------------------------------------------------- generation

    private static readonly string[] Onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "st", "th", "sh", "tr", "vl", "h"];
    private static readonly string[] Vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ei", "y"];
    private static readonly string[] Codas = ["", "", "", "n", "r", "l", "s", "m", "th", "x", "nd", "rk"];

    /// <summary>Words the templates use: a generated name may never be one of them.</summary>
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "the", "was", "born", "in", "and", "for", "works", "year", "city", "river", "lies", "on", "of", "is", "by", "made", "book",
        "set", "first", "where", "when", "who", "what", "which", "does", "did", "she", "he", "they", "it", "its", "an", "a", "to",
        "at", "as", "her", "his", "him", "this", "that", "then", "there", "their", "are", "be", "has", "had", "have", "so", "no",
        "reference", "question", "answer", "user", "assistant", "system", "name", "named", "called", "from", "with", "also", "more",
        "ten", "one", "two", "many", "some", "new", "old", "or", "nor", "not", "yes", "via", "per", "do", "go", "me", "my", "we", "us",
    };

    private sealed class NameStream(Random rng)
    {
        private readonly HashSet<string> _used = new(StringComparer.OrdinalIgnoreCase);

        public string Word(int minSyllables, int maxSyllables)
        {
            for (int attempt = 0; ; attempt++)
            {
                int n = rng.Next(minSyllables, maxSyllables + 1);
                var sb = new StringBuilder();
                for (int i = 0; i < n; i++)
                {
                    sb.Append(Onsets[rng.Next(Onsets.Length)]).Append(Vowels[rng.Next(Vowels.Length)]);
                    if (i == n - 1 || rng.Next(3) == 0) sb.Append(Codas[rng.Next(Codas.Length)]);
                }
                sb[0] = char.ToUpperInvariant(sb[0]);
                var w = sb.ToString();
                if (w.Length < 4 || Reserved.Contains(w) || TemplateWords.Contains(w) || !_used.Add(w)) continue;
                return w;
            }
        }
    }

    /// <summary>Entity counts per kind for one world.</summary>
    public sealed record Size(int People, int Cities, int Organisations, int Books, int Inventions)
    {
        public int Total => People + Cities + Organisations + Books + Inventions;
    }

    /// <summary>
    /// Generates disjoint worlds from one seed: the same seed and sizes give the same worlds, word for word.
    /// Years are split between worlds by <c>(year / 10 + year % 10) mod worlds</c>.
    /// </summary>
    public static KnowledgeWorld[] Generate(int seed, params (string Name, Size Size)[] worlds)
    {
        var rng = new Random(seed);
        var names = new NameStream(rng);
        var result = new KnowledgeWorld[worlds.Length];
        for (int w = 0; w < worlds.Length; w++)
        {
            var (worldName, size) = worlds[w];
            int worldIndex = w, worldCount = worlds.Length;
            int Year()
            {
                // Every world draws from 1000..1999, split so that each world's years are its own while their digit
                // tokens ("187" + "3") all occur in every world: only the combination is new.
                while (true)
                {
                    int y = 1000 + rng.Next(1000);
                    if ((y / 10 + y % 10) % worldCount == worldIndex) return y;
                }
            }
            var countries = Enumerable.Range(0, Math.Max(4, size.Cities / 8)).Select(_ => names.Word(2, 3)).ToArray();
            var rivers = Enumerable.Range(0, Math.Max(4, size.Cities / 3)).Select(_ => names.Word(2, 2)).ToArray();
            var cities = Enumerable.Range(0, size.Cities).Select(_ => names.Word(2, 2)).ToArray();
            var orgs = Enumerable.Range(0, size.Organisations).Select(_ => names.Word(2, 2)).ToArray();
            var entities = new List<Entity>(size.Total);
            string Pick(string[] a) => a[rng.Next(a.Length)];
            foreach (var c in cities)
                entities.Add(new Entity("city", c, [new("country", Pick(countries)), new("river", Pick(rivers)), new("founded", Year().ToString())]));
            foreach (var o in orgs)
                entities.Add(new Entity("organisation", o, [new("headquarters", Pick(cities)), new("product", names.Word(2, 2)), new("founded", Year().ToString())]));
            for (int i = 0; i < size.People; i++)
                entities.Add(new Entity("person", names.Word(2, 2) + " " + names.Word(2, 2),
                    [new("birthplace", Pick(cities)), new("employer", Pick(orgs)), new("born", Year().ToString())]));
            for (int i = 0; i < size.Books; i++)
                entities.Add(new Entity("book", names.Word(2, 2), [new("setting", Pick(cities)), new("published", Year().ToString())]));
            for (int i = 0; i < size.Inventions; i++)
                entities.Add(new Entity("invention", names.Word(2, 2), [new("place", Pick(cities)), new("invented", Year().ToString())]));
            // Interleave kinds so any prefix of the list is a mixed sample.
            var shuffled = entities.OrderBy(_ => rng.Next()).ToList();
            result[w] = new KnowledgeWorld(worldName, shuffled);
        }
        return result;
    }

    // ---------------------------------------------------------------- rendering


    /// <summary>Sentence templates per attribute: {0} the entity, {1} the value.</summary>
    private static readonly Dictionary<string, string[]> Statements = new()
    {
        ["birthplace"] = ["{0} was born in {1}.", "{0} is a native of {1}.", "The birthplace of {0} is {1}.", "{0} comes from the city of {1}."],
        ["employer"] = ["{0} works for {1}.", "{0} is employed by {1}.", "The employer of {0} is {1}.", "{0} has a job at {1}."],
        ["born"] = ["{0} was born in the year {1}.", "{0} was born in {1}.", "The birth year of {0} is {1}."],
        ["country"] = ["The city of {0} lies in {1}.", "{0} is a city in {1}.", "{0} belongs to the country of {1}."],
        ["river"] = ["{0} stands on the river {1}.", "The river {1} flows through {0}.", "The river of {0} is the {1}."],
        ["founded"] = ["{0} was founded in {1}.", "The founding year of {0} is {1}.", "{0} dates from the year {1}."],
        ["headquarters"] = ["The company {0} is based in {1}.", "{0} has its headquarters in {1}.", "The headquarters of {0} are in {1}."],
        ["product"] = ["{0} makes the {1}.", "The main product of {0} is the {1}.", "{0} is known for making the {1}."],
        ["setting"] = ["The book {0} is set in {1}.", "{0} is a novel set in {1}.", "The story of {0} takes place in {1}."],
        ["published"] = ["The book {0} was published in {1}.", "{0} first appeared in {1}.", "The publication year of {0} is {1}."],
        ["place"] = ["The {0} was invented in {1}.", "{0} is an invention from {1}.", "The {0} was first built in {1}."],
        ["invented"] = ["The {0} was invented in the year {1}.", "The {0} dates from {1}.", "The invention year of the {0} is {1}."],
    };

    /// <summary>Question templates per attribute: {0} the entity.</summary>
    private static readonly Dictionary<string, string[]> Questions = new()
    {
        ["birthplace"] = ["Where was {0} born?", "What is the birthplace of {0}?", "Which city does {0} come from?"],
        ["employer"] = ["Who does {0} work for?", "Which company employs {0}?", "What is the employer of {0}?"],
        ["born"] = ["In which year was {0} born?", "When was {0} born?", "What is the birth year of {0}?"],
        ["country"] = ["In which country is {0}?", "Which country does the city of {0} belong to?", "Where does {0} lie?"],
        ["river"] = ["Which river flows through {0}?", "On which river does {0} stand?", "What is the river of {0}?"],
        ["founded"] = ["When was {0} founded?", "In which year was {0} founded?", "What is the founding year of {0}?"],
        ["headquarters"] = ["Where is {0} based?", "Where are the headquarters of {0}?", "In which city is the company {0} based?"],
        ["product"] = ["What does {0} make?", "What is the main product of {0}?", "Which product is {0} known for?"],
        ["setting"] = ["Where is the book {0} set?", "In which city does {0} take place?", "What is the setting of {0}?"],
        ["published"] = ["When was the book {0} published?", "In which year did {0} first appear?", "What is the publication year of {0}?"],
        ["place"] = ["Where was the {0} invented?", "In which city was the {0} first built?", "Where does the {0} come from?"],
        ["invented"] = ["When was the {0} invented?", "In which year was the {0} invented?", "What is the invention year of the {0}?"],
    };

    /// <summary>
    /// Every word the rendered text is made of besides names and values (templates, kinds, the RAG
    /// instruction), case-insensitively: a generated name may never be one of them either. The syllables can spell
    /// "Story", "Novel", "Dates", "Make"…, and such a name would occur in every text that uses the template, the
    /// held-out world's in training text too. (Declared after the templates: static fields initialise in order.)
    /// </summary>
    private static readonly HashSet<string> TemplateWords = Statements.Values.Concat(Questions.Values).SelectMany(t => t)
        .Concat(["city", "company", "book", "invention", "person", TrainingData.RagInstruction])
        .SelectMany(t => Regex.Matches(t, @"\p{L}+").Select(m => m.Value))
        .ToHashSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>The sentence stating one fact, template chosen by <paramref name="rng"/>.</summary>
    public static string Statement(Entity e, Fact f, Random rng)
    {
        var t = Statements[f.Attribute];
        return string.Format(t[rng.Next(t.Length)], e.Name, f.Value);
    }

    /// <summary>
    /// The reference of one fact: its statement, in a wording chosen by <paramref name="rng"/>. One fact a reference
    /// (≈ 8–16 tokens) so that the kept tokens per head (<see cref="TrainRecipeOptions.MemoryTokensPerHead"/>) can hold what it says, and a read is one lookup.
    /// </summary>
    public static string Reference(Entity e, Fact f, Random rng) => Statement(e, f, rng);

    /// <summary>The references of the whole world, one per fact, deterministically worded from <paramref name="seed"/>.</summary>
    public IReadOnlyList<(Entity Entity, string Text)> References(int seed)
    {
        var rng = new Random(seed);
        return Entities.SelectMany(e => e.Facts.Select(f => (e, Reference(e, f, rng)))).ToList();
    }

    public static FactQuestion Question(Entity e, Fact f, Random rng)
    {
        var t = Questions[f.Attribute];
        return new FactQuestion(string.Format(t[rng.Next(t.Length)], e.Name), f.Value, e.Name, f.Attribute);
    }

    /// <summary><paramref name="count"/> distinct (entity, attribute) questions, deterministically from <paramref name="seed"/>.</summary>
    public IReadOnlyList<FactQuestion> SampleQuestions(int count, int seed)
    {
        var rng = new Random(seed);
        var pairs = Entities.SelectMany(e => e.Facts.Select(f => (e, f))).OrderBy(_ => rng.Next()).Take(count);
        return pairs.Select(p => Question(p.e, p.f, rng)).ToList();
    }

    /// <summary>A passage about a few entities: their facts, reworded, with the entities interleaved.</summary>
    public string Passage(Random rng, int entities)
    {
        var chosen = Enumerable.Range(0, entities).Select(_ => Entities[rng.Next(Entities.Count)]).Distinct().ToList();
        var sentences = chosen.SelectMany(e => e.Facts.Select(f => Statement(e, f, rng))).OrderBy(_ => rng.Next()).ToList();
        return string.Join(" ", sentences);
    }

    /// <summary>Text for the chat template: a question and its answer (the value alone).</summary>
    public static (string User, string Assistant) QaTurn(FactQuestion q) => (q.Question, q.Answer);

    /// <summary>Whether <paramref name="word"/> occurs as a whole word in <paramref name="text"/>.</summary>
    public static bool ContainsWord(string text, string word) =>
        Regex.IsMatch(text, $@"(?<![\p{{L}}\p{{N}}]){Regex.Escape(word)}(?![\p{{L}}\p{{N}}])", RegexOptions.CultureInvariant);
}
