namespace Memory3.Server.Api.OpenAi.Models;

public sealed record ModelList(string Object, List<ModelCard> Data);

/// <summary>OpenAI's model object plus vLLM's <c>root</c> and <c>max_model_len</c>.</summary>
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, string Root, int MaxModelLen);
