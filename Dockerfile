# ShadowRegistry container image.
#   docker build -t shadow-registry .
#   docker run -d -p 5000:5000 -v shadow-registry-data:/var/lib/shadow-registry shadow-registry

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project file alone, so the package layer is reused until dependencies change.
COPY src/ShadowRegistry/ShadowRegistry.csproj src/ShadowRegistry/
RUN dotnet restore src/ShadowRegistry/ShadowRegistry.csproj
COPY src/ShadowRegistry/ src/ShadowRegistry/
RUN dotnet publish src/ShadowRegistry/ShadowRegistry.csproj -c Release -o /app --no-restore -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
# The base image's non-root user "app" ($APP_UID, 1654) owns the storage root; a fresh named volume inherits that.
RUN mkdir -p /var/lib/shadow-registry && chown "$APP_UID:$APP_UID" /var/lib/shadow-registry
USER $APP_UID
# The base image asks Kestrel for port 8080; the registry listens where --listen says instead.
ENV ASPNETCORE_HTTP_PORTS=
VOLUME /var/lib/shadow-registry
EXPOSE 5000
ENTRYPOINT ["dotnet", "ShadowRegistry.dll", "serve", "--listen", "http://0.0.0.0:5000", "--data", "/var/lib/shadow-registry"]
