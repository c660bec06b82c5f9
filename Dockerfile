# ShadowRegistry container image, built from source (see "Running in a container" in README.md).
#   docker build -t shadow-registry .
#   docker run -d -p 5000:5000 -v shadow-registry-data:/var/lib/shadow-registry shadow-registry
# Where mcr.microsoft.com cannot be reached, .ci/base-images makes local base images from Debian and the host's .NET:
#   docker build --build-arg SDK_IMAGE=shadowregistry/sdk-base --build-arg RUNTIME_IMAGE=shadowregistry/runtime-base ...

# Any images with the .NET 10 SDK and the ASP.NET Core 10 runtime, a non-root user and its uid in $APP_UID.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

FROM ${SDK_IMAGE} AS build
WORKDIR /src
# Restore first, from the project file alone, so the package layer is reused until dependencies change. The runtime
# identifier is the build machine's, which ReadyToRun compilation needs (and restores the runtime and crossgen2 for).
COPY src/ShadowRegistry/ShadowRegistry.csproj src/ShadowRegistry/
RUN dotnet restore src/ShadowRegistry/ShadowRegistry.csproj --use-current-runtime
COPY src/ShadowRegistry/ src/ShadowRegistry/
RUN dotnet publish src/ShadowRegistry/ShadowRegistry.csproj -c Release -o /app --no-restore --use-current-runtime \
      --self-contained false -p:UseAppHost=false

FROM ${RUNTIME_IMAGE}
WORKDIR /app
COPY --from=build /app ./
# The base image's non-root user ($APP_UID, 1654 in the official images) owns the storage root; a fresh named volume
# takes the ownership of the folder it is mounted over.
RUN mkdir -p /var/lib/shadow-registry && chown "$APP_UID:$APP_UID" /var/lib/shadow-registry
USER $APP_UID
# The listen address: change the port here (-e ASPNETCORE_URLS=http://0.0.0.0:6000), not with --listen, so that
# the health check, which reads the same variable, follows. The official images' ASPNETCORE_HTTP_PORTS=8080 would
# add a second, unwanted listener.
ENV ASPNETCORE_URLS=http://0.0.0.0:5000 \
    ASPNETCORE_HTTP_PORTS= \
    Registry__StorageRoot=/var/lib/shadow-registry
VOLUME /var/lib/shadow-registry
EXPOSE 5000
# Liveness only (/healthz); the runtime images have no curl, so the registry's own binary makes the request.
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
  CMD ["dotnet", "ShadowRegistry.dll", "healthcheck"]
ENTRYPOINT ["dotnet", "ShadowRegistry.dll", "serve"]
