using TorchSharp;

namespace Memory3.Engine.Tests;

public class TorchSmokeTests
{
    [Fact]
    public void LibTorchLoadsAndMultipliesBf16()
    {
        using var a = torch.ones(4, 8, dtype: torch.bfloat16);
        using var b = torch.ones(8, 3, dtype: torch.bfloat16);
        using var c = torch.matmul(a, b).to(torch.float32);
        Assert.Equal(8f, c[1, 2].item<float>());
    }
}
