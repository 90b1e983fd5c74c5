using Memory3.Server.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Memory3.Server.Api.OpenAi.Models;

public static class ModelsEndpoints
{
    public static RouteGroupBuilder MapModels(this RouteGroupBuilder v1)
    {
        v1.MapGet("/models", List)
            .WithName("ListModels").WithSummary("Lists the served model").WithTags("OpenAI")
            .ProducesOpenAiErrors().WithExample(null, ApiExamples.ModelList);
        v1.MapGet("/models/{id}", Get)
            .WithName("GetModel").WithSummary("Describes a served model; 404 for any other id").WithTags("OpenAI")
            .ProducesOpenAiErrors().WithExample(null, ApiExamples.ModelCard);
        return v1;
    }

    public static Ok<ModelList> List(ModelHost host) => TypedResults.Ok(new ModelList("list", [Card(host)]));

    public static Ok<ModelCard> Get(string id, ModelHost host)
    {
        SamplingMapping.CheckModel(id, host);
        return TypedResults.Ok(Card(host));
    }

    private static ModelCard Card(ModelHost host) => new(host.Id, "model", host.Created.ToUnixTimeSeconds(), "memory3", host.Id, host.MaxModelLen);
}
