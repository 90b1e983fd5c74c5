# syntax=docker/dockerfile:1
# Memory3 server image: builds src/Memory3.Server and serves the embedded model (models/memory3-tiny) on port 8000.
#
#   docker build -t memory3 .                                   # CPU libtorch (default)
#   docker build -t memory3:cuda --build-arg TORCH_DEVICE=cuda .  # CUDA 12.8 libtorch on an NVIDIA CUDA runtime base
#   docker run --rm -p 8000:8000 memory3
#   docker run --rm --gpus all -p 8000:8000 memory3:cuda
#   docker build --target cli -t memory3-cli .                   # the memory3 CLI (ingestion Job), see deploy/k8s
#
# Build arguments:
#   TORCH_DEVICE   cpu | cuda — passed to the build as -p:TorchDevice (Memory3.Engine.csproj swaps
#                  libtorch-cpu-linux-x64 for libtorch-cuda-12.8-linux-x64) and selects the runtime stage below.
#   RUNTIME_IMAGE  the base of the CUDA runtime stage (default nvidia/cuda:12.8.1-runtime-ubuntu24.04); the .NET/ASP.NET
#                  runtime is copied into it from the official aspnet image. The CPU stage is mcr.microsoft.com/dotnet/aspnet:10.0.
ARG TORCH_DEVICE=cpu
ARG RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# ---- build ----------------------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TORCH_DEVICE
WORKDIR /src
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# Restore first (cached while only sources change).
COPY Directory.Build.props Directory.Build.targets ./
COPY src/Memory3.Engine/Memory3.Engine.csproj src/Memory3.Engine/
COPY src/Memory3.Server/Memory3.Server.csproj src/Memory3.Server/
RUN dotnet restore src/Memory3.Server/Memory3.Server.csproj -p:TorchDevice=$TORCH_DEVICE
COPY appsettings.json ./
COPY src/Memory3.Engine/ src/Memory3.Engine/
COPY src/Memory3.Server/ src/Memory3.Server/
# Directory.Build.targets' PatchLibTorchSharp step also runs after Publish, on the published libLibTorchSharp.so.
RUN dotnet publish src/Memory3.Server/Memory3.Server.csproj -c Release --no-restore -p:TorchDevice=$TORCH_DEVICE -o /app \
 && test -f /app/appsettings.json

# ---- runtime bases --------------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime-cpu

FROM ${RUNTIME_IMAGE} AS runtime-cuda
# The ASP.NET Core runtime from the official image (it needs only libc, libstdc++, zlib; globalization is invariant).
COPY --from=mcr.microsoft.com/dotnet/aspnet:10.0 /usr/share/dotnet /usr/share/dotnet
RUN ln -sf /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && (getent passwd 1654 >/dev/null || useradd --uid 1654 --user-group --no-create-home --home-dir /app app)
ENV DOTNET_RUNNING_IN_CONTAINER=true \
    Memory3__Model__Device=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---- cli (optional target) ------------------------------------------------------------------------------------------
# The `memory3` CLI for the Kubernetes ingestion Job (deploy/k8s/base/ingest-job.yaml). Built only when asked for:
#   docker build --target cli -t memory3-cli .        (add --build-arg TORCH_DEVICE=cuda for the CUDA one)
# The default target stays `final` (the server); BuildKit skips these stages otherwise.
FROM build AS build-cli
ARG TORCH_DEVICE
COPY src/Memory3.Cli/ src/Memory3.Cli/
RUN dotnet publish src/Memory3.Cli/Memory3.Cli.csproj -c Release -p:TorchDevice=$TORCH_DEVICE -o /cli

FROM runtime-${TORCH_DEVICE} AS cli
WORKDIR /app
COPY --from=build-cli /cli ./
COPY models/ ./models/
USER 1654
ENTRYPOINT ["dotnet", "memory3.dll"]

# ---- final ----------------------------------------------------------------------------------------------------------
FROM runtime-${TORCH_DEVICE} AS final
WORKDIR /app
# The server's content root is /app: RepositoryLayout finds appsettings.json next to models/ there, and resolves
# Memory3:Model:Path (models/memory3-tiny) from it.
COPY --from=build /app ./
COPY models/ ./models/
COPY appsettings.json ./appsettings.json
RUN mkdir -p /app/data && chown -R 1654:1654 /app/data
# The bank lives on the writable data folder (a volume in compose); an empty bank is seeded from the model's knowledge/.
ENV ASPNETCORE_URLS=http://0.0.0.0:8000 \
    ASPNETCORE_HTTP_PORTS= \
    Memory3__Bank__Path=/app/data/bank \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
EXPOSE 8000
# The official images' non-root "app" user (uid 1654); created above on the CUDA base.
USER 1654
# No curl in the runtime images: bash's /dev/tcp asks /health for its status line.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200'"]
ENTRYPOINT ["dotnet", "Memory3.Server.dll"]
