public import SluiceCore
import Foundation

/// Everything `sluice.yml` declares. Read in one place (``ConfigReader``); validated
/// before any I/O.
public struct SluiceConfig: Sendable {
    /// The database of both the control plane and the tables, unless `control` or `target`
    /// says otherwise: a SQLite file path (the default is `./sluice.db`) or a `postgres://` URL.
    public var database: String = "sluice.db"
    /// Where jobs, ledgers and runs live when not in `database` (SQLite or PostgreSQL).
    public var control: String?
    /// Where tables are loaded when not in `database` (also `mysql://`, which holds tables only).
    public var target: String?
    /// The control plane's database in effect.
    public var controlDatabase: String { control ?? database }
    /// The PostgreSQL schema of tables named without one (`target_schema`). The default is
    /// `public`; never the session's `search_path`, so never Sluice's own schema.
    public var targetSchema: String?
    /// The tables' database in effect.
    public var targetDatabase: String { target ?? database }
    /// Folder for load summaries and rejects files. The default is `.sluice`.
    public var stateDir: String = ".sluice"
    /// An object store every process reaches (`storage: s3://bucket/prefix/`) holding the files
    /// jobs need after a request was answered (uploads, watched files' copies), so that no job
    /// depends on one host's disk. The default is none: the local upload folder.
    public var storage: String?
    /// Declared entities by name.
    public var entities: [String: Entity] = [:]
    public var server = ServerSettings()
    public var worker = WorkerSettings()
    /// Declared exports (`exports:`) by name, run with `sluice export NAME`.
    public var exports: [String: ExportSettings] = [:]
    /// How to reach S3 (`s3:`); credentials come from the standard AWS variables or files.
    public var s3 = S3Settings()
    /// How Sluice writes Parquet (`parquet:`): `sluice convert` and exports in Parquet.
    public var parquet = ParquetSettings()
    /// How long files and records are kept (`retention:`), applied by `sluice gc` and hourly by `sluice serve`.
    public var retention = RetentionSettings()
    /// Declared splits of nested JSON into several entities (`mappings:`), by name; a watch
    /// or `sluice load` whose `into` names a mapping loads each of its entities.
    public var mappings: [String: JSONMapping] = [:]
    /// Declared pipelines (`pipelines:`) by name, run with `sluice run NAME`.
    public var pipelines: [String: Pipeline] = [:]
    /// Declared watches (`watches:`) by name, run by `sluice serve` and `sluice watch NAME`.
    public var watches: [String: WatchSettings] = [:]
    /// The file this came from, if any (for messages).
    public var path: String?

    public init() {}

    public func entity(_ name: String) -> Entity? { entities[name] }

    /// The upload folder in effect.
    public var uploadDir: String { server.uploadDir ?? (stateDir as NSString).appendingPathComponent("uploads") }
    /// Where workers keep per-job scratch files (stages, downloads, rejects).
    public var workDir: String { (stateDir as NSString).appendingPathComponent("work") }
}

/// The `server:` section: how `sluice serve` listens, authenticates and accepts files.
public struct ServerSettings: Sendable {
    /// Address to bind. The default is 127.0.0.1.
    public var host = "127.0.0.1"
    /// The default is 8080.
    public var port = 8080
    /// Bearer tokens accepted by the API (also from $SLUICE_API_TOKENS, comma-separated).
    public var tokens: [String] = []
    /// Where uploads are stored under generated names. The default is `<state_dir>/uploads`.
    public var uploadDir: String?
    /// Largest request body, in bytes. The default is 1 GiB.
    public var maxBodyBytes: Int64 = 1 << 30
    /// Folders whose files `file://` URLs may name. The default is none (file URLs refused).
    public var fileRoots: [String] = []
    /// Hosts `http(s)://` URLs may name. The default is none (HTTP sources refused).
    public var httpAllowlist: [String] = []
    /// Allow link-local and cloud-metadata addresses for HTTP sources. The default is false.
    public var allowLinkLocal = false
    /// The entity `POST /bulk_upload` loads into; without one it only stores the file.
    public var bulkUploadEntity: String?
    /// Buckets `s3://` URLs in requests may name. The default is none (S3 sources refused).
    public var s3Buckets: [String] = []
    /// Buckets `gs://` job sources may name.
    public var gcsBuckets: [String] = []
    /// Open connections at most (`max_connections`). The default is ¾ × (the process's
    /// file-descriptor limit − 128), the soft limit first raised to the hard one.
    public var maxConnections: Int?
    /// Seconds a replica holds the lease on the schedules or on a watch before another may
    /// take over (`lease_seconds`). The default is 30.
    public var leaseSeconds: Double = 30

    public init() {}
}

/// One `watches:` entry: a folder or S3 prefix whose new files load into an entity.
public struct WatchSettings: Sendable, Equatable {
    public var source: String?
    public var into: String?
    public var glob: String?
    public var interval: Double?
    public var minAge: Double?
    /// `reprocess` or `ignore`.
    public var onChange: String?
    public var maxFiles: Int?
    public var maxBytes: Int64?
    public var watermark: Bool?
    public var raw: String?
    public var format: SourceFormat?
    public var mode: WriteMode?
    public init() {}
}

/// The `s3:` section: an S3-compatible endpoint and region, over the AWS environment.
public struct S3Settings: Sendable, Equatable {
    /// `http://127.0.0.1:9000` for MinIO and the like; unset means AWS.
    public var endpoint: String?
    public var region: String?
    public var pathStyle: Bool?
    public init() {}
}

/// The `parquet:` section: settings every Parquet file Sluice writes takes, unless the
/// command line says otherwise. Checked when read; unset keeps the writer's defaults.
public struct ParquetSettings: Sendable, Equatable {
    /// `wide` (also `spark`) or `exact`.
    public var compat: String?
    /// `none`, `snappy`, `gzip` or `zstd`.
    public var compression: String?
    public var rowGroupRows: Int?
    public static let compats = ["wide", "spark", "exact"]
    public static let compressions = ["none", "uncompressed", "snappy", "gzip", "zstd"]
    public init() {}
}

/// The `retention:` section, in days (fractions allowed; 0 removes at the next pass).
public struct RetentionSettings: Sendable, Equatable {
    /// An upload's file after its last job completed (duplicates go at once). The default is 7.
    public var uploadsDays: Double = 7
    /// A finished job's work folder (scratch and rejects files). The default is 7.
    public var workDays: Double = 7
    /// A finished job's row (its status, counts and error; also what tells a re-sent file
    /// with the same bytes from a new one). The default is 90.
    public var jobsDays: Double = 90
    /// Pipeline run records and their rejects folders. The default is 90.
    public var runsDays: Double = 90
    /// `sluice load` summaries and rejects files under `<state_dir>/loads`. The default is 30.
    public var loadsDays: Double = 30
    /// An object in `storage:`'s uploads folder no upload record names (its process died
    /// between keeping it and recording it). The default is an hour.
    public var orphansDays: Double = 1.0 / 24
    /// Export ledgers keep runs of consecutive integer keys of delivered batches as ranges
    /// (exports declared with `resend_changed` keep every key). The default is on.
    public var exportRanges = true
    public init() {}
}

/// The `worker:` section: how workers take and run jobs.
public struct WorkerSettings: Sendable {
    /// Jobs one worker process runs at once. The default is 2.
    public var concurrency = 2
    /// How long a claim lasts without a heartbeat. The default is 30 seconds.
    public var leaseSeconds: Double = 30
    /// Attempts before a job lands in `error`. The default is 3.
    public var maxAttempts = 3
    /// How often an idle worker looks for work (it is also woken on submission in the same
    /// process). The default is 1 second.
    public var pollSeconds: Double = 1
    /// Wait before the second attempt (doubling after, with jitter). The default is 2 seconds.
    public var retryBaseSeconds: Double = 2
    /// Split files larger than this many MiB into chunks that several workers load at once
    /// (PostgreSQL targets; CSV and NDJSON). The default is off.
    public var chunkMB: Int?
    /// Back-pressure for pipelines run over the queue: a stage stops taking work while the
    /// next stage has more than this many batches waiting. The default is 32.
    public var maxBacklog = 32

    public init() {}
}

/// One `exports:` entry: a table delivered to an HTTP receiver. Unset fields take the
/// command line's value, then the defaults of `sluice export`.
public struct ExportSettings: Sendable, Equatable {
    public var from: String?
    /// A read-only query to export instead of a table.
    public var query: String?
    /// A SQL boolean expression rows must satisfy (`where:`).
    public var filter: String?
    public var resendChanged: Bool?
    public var key: String?
    public var to: String?
    public var batchSize: Int?
    public var format: String?
    public var concurrency: Int?
    public var field: String?
    public var rawBody: Bool?
    public var form: [String: String] = [:]
    public var headers: [String: String] = [:]
    public var tokenEnv: String?
    public var gzip: Bool?
    public var rate: Double?
    public var rowsPerSecond: Double?
    public var maxAttempts: Int?
    public var timeout: Double?
    /// A Delta table the delivered keys are appended to (`ledger: delta:PATH`), beside the
    /// database's own ledger.
    public var ledger: String?
    public init() {}
}
