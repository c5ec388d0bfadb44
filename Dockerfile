# sluice: a static binary on a slim Debian. Build: docker build -t sluice .
# Run:   docker run -p 8080:8080 -e SLUICE_API_TOKENS=secret -v sluice:/var/lib/sluice sluice
FROM swift:6.1-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/build-release.sh

FROM debian:bookworm-slim
# The binary needs only glibc, libstdc++ and zlib; certificates for https:// sources.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates=20230311* libstdc++6=12.2.0* zlib1g=1:1.2.13* \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/sluice sluice
COPY --from=build /src/dist/sluice /usr/local/bin/sluice
USER 10001:10001
WORKDIR /var/lib/sluice
ENV SLUICE_HOST=0.0.0.0 \
    SLUICE_PORT=8080 \
    SLUICE_STATE_DIR=/var/lib/sluice/state \
    SLUICE_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["sluice", "version"]
ENTRYPOINT ["sluice"]
CMD ["serve"]
