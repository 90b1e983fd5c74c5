namespace Memory3.Server.Api.OpenAi;

/// <summary>Example bodies shown on the Swagger page.</summary>
public static class ApiExamples
{
    public const string ChatRequest = """
        {"model":"tiny-random","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}],
         "max_tokens":32,"temperature":0.7,"top_p":0.95,"n":1,"stop":["\n\n"],"seed":42,"stream":false,
         "stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2,"top_k":40,"min_p":0.05,"repetition_penalty":1.1}
        """;
    public const string ChatResponse = """
        {"id":"chatcmpl-0123456789abcdef01234567","object":"chat.completion","created":1735689600,"model":"tiny-random",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"logprobs":null,"finish_reason":"stop"}],
         "usage":{"prompt_tokens":21,"completion_tokens":3,"total_tokens":24}}
        """;
    public const string CompletionRequest = """
        {"model":"tiny-random","prompt":"Once upon a time","max_tokens":16,"temperature":0,"logprobs":2,"stop":"."}
        """;
    public const string CompletionResponse = """
        {"id":"cmpl-0123456789abcdef01234567","object":"text_completion","created":1735689600,"model":"tiny-random",
         "choices":[{"index":0,"text":" there was a model","logprobs":null,"finish_reason":"length"}],
         "usage":{"prompt_tokens":5,"completion_tokens":16,"total_tokens":21}}
        """;
    public const string ModelList = """
        {"object":"list","data":[{"id":"tiny-random","object":"model","created":1735689600,"owned_by":"memory3","root":"tiny-random","max_model_len":4096}]}
        """;
    public const string ModelCard = """
        {"id":"tiny-random","object":"model","created":1735689600,"owned_by":"memory3","root":"tiny-random","max_model_len":4096}
        """;
    public const string TokenizeRequest = """{"prompt":"Hello world","add_special_tokens":true,"return_token_strs":true}""";
    public const string TokenizeResponse = """{"count":3,"max_model_len":4096,"tokens":[508,320,410],"token_strs":["<s>","Hello","Ġworld"]}""";
    public const string DetokenizeRequest = """{"tokens":[320,410]}""";
    public const string DetokenizeResponse = """{"prompt":"Hello world"}""";
}
