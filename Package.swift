// swift-tools-version:6.1
import PackageDescription

/// Strict settings from day one (see shared/STYLE.md §20).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .library(name: "SluiceCore", targets: ["SluiceCore"]),
        .library(name: "SluiceFormats", targets: ["SluiceFormats"]),
        .library(name: "SluiceSQLite", targets: ["SluiceSQLite"]),
        .library(name: "SluiceLoad", targets: ["SluiceLoad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
    ],
    targets: [
        // Pure core: types, batches, schemas, coercion, inference, merge planning, expressions and
        // pipeline steps, cron schedules and the pipeline DAG, key globs. No I/O.
        .target(name: "SluiceCore", swiftSettings: strict),
        // Streaming decoders and encoders (CSV, JSON, gzip). Bytes in, batches out; no I/O.
        .target(
            name: "SluiceFormats",
            dependencies: [
                "SluiceCore",
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: strict
        ),
        // The embedded SQLite target: tables, write modes, transactions (sqlite3 C API).
        .target(
            name: "SluiceSQLite",
            dependencies: [
                "SluiceCore", "SluiceQueue",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // PostgreSQL: the production control plane (queue driver) and target (COPY → stage → MERGE).
        .target(
            name: "SluicePostgres",
            dependencies: [
                "SluiceCore", "SluiceQueue",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // MySQL / MariaDB as a target: our own client over swift-nio (handshake, TLS, auth,
        // text protocol, LOAD DATA LOCAL INFILE), and the sink (stage → INSERT … ON DUPLICATE KEY).
        .target(
            name: "SluiceMySQL",
            dependencies: [
                "SluiceCore", "SluiceQueue",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Object storage: local folders, HTTP(S), S3-compatible buckets (our own SigV4 signer), FTP,
        // Cloud Storage and Google Drive (our own JWT service-account auth), and the policy that says which sources a request may name.
        .target(
            name: "SluiceStorage",
            dependencies: [
                "SluiceCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // `sluice watch`: polls a folder or bucket, records each object version in the file
        // ledger and queues its load exactly once (planning is pure; the watcher does the I/O).
        .target(
            name: "SluiceWatch",
            dependencies: [
                "SluiceCore", "SluiceQueue", "SluiceStorage", "SluiceLoad",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // sluice.yml: entities and options, read with Yams.
        .target(
            name: "SluiceConfig",
            dependencies: ["SluiceCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Wires sources, decoders and sinks into a load with stats, rejects and progress.
        .target(
            name: "SluiceLoad",
            dependencies: ["SluiceCore", "SluiceFormats", "SluiceConfig", .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        // The durable job queue: job model, lifecycle state machine, retry policy, driver protocol
        // and the conformance suite every driver runs. Pure except for the drivers themselves.
        .target(
            name: "SluiceQueue",
            dependencies: ["SluiceCore", .product(name: "Instrumentation", package: "swift-distributed-tracing")],
            swiftSettings: strict
        ),
        // Workers: claim jobs, heartbeat leases, fetch sources, run loads, commit with fencing.
        .target(
            name: "SluiceWorker",
            dependencies: [
                "SluiceCore", "SluiceFormats", "SluiceConfig", "SluiceStorage", "SluiceLoad", "SluiceQueue",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // Export: table rows to HTTP receivers in batches, with a delivery ledger, retries and rate limits.
        .target(
            name: "SluiceExport",
            dependencies: [
                "SluiceCore", "SluiceFormats", "SluiceQueue", "SluiceStorage",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The composition root: the backend a configuration names, resolved once (SQLite file or
        // PostgreSQL URL), and the runtime built on it (control plane, job target, workers).
        .target(
            name: "SluiceRuntime",
            dependencies: [
                "SluiceCore", "SluiceFormats", "SluiceConfig", "SluiceQueue", "SluiceStorage", "SluiceLoad", "SluiceWorker", "SluiceExport", "SluiceWatch", "SluiceSQLite", "SluicePostgres",
                "SluiceMySQL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // HTTP API (Hummingbird): routes and controllers, request → validated job. No business logic.
        .target(
            name: "SluiceHTTP",
            dependencies: [
                "SluiceCore", "SluiceConfig", "SluiceQueue", "SluiceStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("openapi.yaml")],
            swiftSettings: strict
        ),
        // The `sluice` command-line shell.
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCore", "SluiceFormats", "SluiceLoad", "SluiceConfig", "SluiceQueue", "SluiceWorker", "SluiceHTTP", "SluiceExport", "SluiceStorage",
                "SluiceWatch", "SluiceRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Fuzz driver for the Parquet and Avro readers (libFuzzer under -DFUZZING, else a seeded loop).
        .executableTarget(name: "sluice-fuzz", dependencies: ["SluiceFormats"], swiftSettings: strict),
        // Helpers shared by the test targets (scratch folders, seeded randomness).
        .target(name: "SluiceTesting", dependencies: ["SluiceCore", "SluiceQueue"], swiftSettings: strict),
        .testTarget(
            name: "SluiceCoreTests",
            dependencies: ["SluiceCore", "SluiceTesting", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceFormatsTests",
            dependencies: ["SluiceCore", "SluiceFormats", "SluiceTesting", .product(name: "PropertyBased", package: "swift-property-based")],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(name: "SluiceSQLiteTests", dependencies: ["SluiceCore", "SluiceSQLite", "SluiceQueue", "SluiceTesting"], swiftSettings: strict),
        .testTarget(name: "SluiceLoadTests", dependencies: ["SluiceCore", "SluiceFormats", "SluiceConfig", "SluiceLoad", "SluiceSQLite", "SluiceTesting"], swiftSettings: strict),
        .testTarget(name: "SluiceExportTests", dependencies: ["SluiceExport", "SluiceCore"], swiftSettings: strict),
        .testTarget(name: "SluiceStorageTests", dependencies: ["SluiceStorage", "SluiceCore", "SluiceTesting"], swiftSettings: strict),
        .testTarget(
            name: "SluiceWatchTests",
            dependencies: ["SluiceWatch", "SluiceStorage", "SluiceQueue", "SluiceCore", "SluiceSQLite", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(name: "SluiceQueueTests", dependencies: ["SluiceCore", "SluiceConfig", "SluiceQueue", "SluiceSQLite", "SluiceWorker", "SluiceStorage", "SluiceTesting"], swiftSettings: strict),
        .testTarget(
            name: "SluicePostgresTests",
            dependencies: ["SluiceCore", "SluiceQueue", "SluicePostgres", "SluiceLoad", "SluiceTesting", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strict
        ),
        .testTarget(name: "SluiceMySQLTests", dependencies: ["SluiceCore", "SluiceQueue", "SluiceMySQL", "SluiceSQLite", "SluiceTesting"], swiftSettings: strict),
        .testTarget(
            name: "SluiceHTTPTests",
            dependencies: ["SluiceCore", "SluiceConfig", "SluiceQueue", "SluiceHTTP", "SluiceStorage", "SluiceSQLite", "SluiceTesting", .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Runs the built `sluice` binary (the dependency makes SwiftPM build it first).
        .testTarget(name: "SluiceCLITests", dependencies: ["sluice", "SluiceRuntime", "SluiceCore", "SluiceQueue", "SluiceTesting", .product(name: "Tracing", package: "swift-distributed-tracing"), .product(name: "Logging", package: "swift-log")], swiftSettings: strict),
    ]
)
