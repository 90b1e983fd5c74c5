using Memory3.Engine.Model.Sampling;

namespace Memory3.Engine.Tests.Sampling;

public class SamplingParamsTests
{
    [Fact]
    public void Defaults_AreValid()
    {
        new SamplingParams().Validate(100);
        new SamplingParams
        {
            Temperature = 2, TopP = 1e-3f, TopK = 0, MinP = 1, PresencePenalty = -2, FrequencyPenalty = 2,
            RepetitionPenalty = 0.01f, LogitBias = new Dictionary<int, float> { [0] = -100, [99] = 100 },
            Logprobs = 20, Stop = ["\n"], StopTokenIds = [99], MaxTokens = 1,
        }.Validate(100);
    }

    public static TheoryData<string, SamplingParams> Bad => new()
    {
        { "temperature", new() { Temperature = -0.1f } },
        { "temperature", new() { Temperature = 2.01f } },
        { "temperature", new() { Temperature = float.NaN } },
        { "top_p", new() { TopP = 0 } },
        { "top_p", new() { TopP = 1.1f } },
        { "top_k", new() { TopK = -2 } },
        { "min_p", new() { MinP = -0.1f } },
        { "min_p", new() { MinP = 1.5f } },
        { "presence_penalty", new() { PresencePenalty = 2.5f } },
        { "frequency_penalty", new() { FrequencyPenalty = -2.1f } },
        { "repetition_penalty", new() { RepetitionPenalty = 0 } },
        { "repetition_penalty", new() { RepetitionPenalty = float.PositiveInfinity } },
        { "logit_bias", new() { LogitBias = new Dictionary<int, float> { [5] = 101 } } },
        { "logit_bias", new() { LogitBias = new Dictionary<int, float> { [5] = -100.5f } } },
        { "logit_bias", new() { LogitBias = new Dictionary<int, float> { [100] = 1 } } },
        { "logit_bias", new() { LogitBias = new Dictionary<int, float> { [-1] = 1 } } },
        { "top_logprobs", new() { Logprobs = 21 } },
        { "top_logprobs", new() { Logprobs = -1 } },
        { "max_tokens", new() { MaxTokens = 0 } },
        { "stop", new() { Stop = ["ok", ""] } },
        { "stop_token_ids", new() { StopTokenIds = [100] } },
    };

    [Theory]
    [MemberData(nameof(Bad))]
    public void Validate_RejectsWithOpenAiParamName(string param, SamplingParams p)
    {
        var e = Assert.IsAssignableFrom<ArgumentException>(Record.Exception(() => p.Validate(100)));
        Assert.Equal(param, e.ParamName);
        Assert.StartsWith(param, e.Message);
        Assert.DoesNotContain("(Parameter", e.Message);
    }

    [Fact]
    public void Sampler_ValidatesItsParams()
    {
        var e = Assert.Throws<SamplingParamException>(() => new Sampler(new SamplingParams { TopP = 0 }, 10));
        Assert.Equal("top_p", e.ParamName);
    }
}
