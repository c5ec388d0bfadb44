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
    ],
    targets: [
        // Pure core: types, batches, schemas, coercion, inference, merge planning. No I/O.
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
                "SluiceCore",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            swiftSettings: strict
        ),
        // sluice.yml: entities and options, read with Yams.
        .target(
            name: "SluiceConfig",
            dependencies: ["SluiceCore", "SluiceFormats", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Wires sources, decoders and sinks into a load with stats, rejects and progress.
        .target(
            name: "SluiceLoad",
            dependencies: ["SluiceCore", "SluiceFormats", "SluiceSQLite", "SluiceConfig"],
            swiftSettings: strict
        ),
        // The `sluice` command-line shell.
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceLoad", "SluiceConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Helpers shared by the test targets (scratch folders, seeded randomness).
        .target(name: "SluiceTesting", swiftSettings: strict),
        .testTarget(
            name: "SluiceCoreTests",
            dependencies: ["SluiceCore", "SluiceTesting", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceFormatsTests",
            dependencies: ["SluiceFormats", "SluiceTesting", .product(name: "PropertyBased", package: "swift-property-based")],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(name: "SluiceSQLiteTests", dependencies: ["SluiceSQLite", "SluiceTesting"], swiftSettings: strict),
        .testTarget(name: "SluiceLoadTests", dependencies: ["SluiceLoad", "SluiceTesting"], swiftSettings: strict),
        // Runs the built `sluice` binary (the dependency makes SwiftPM build it first).
        .testTarget(name: "SluiceCLITests", dependencies: ["sluice"], swiftSettings: strict),
    ]
)
