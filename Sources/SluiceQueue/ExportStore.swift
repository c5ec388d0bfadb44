public import SluiceCore
import Foundation

/// A row's key as the delivery ledger stores it (the key column's value).
public enum LedgerKey: Sendable, Hashable {
    case null, int(Int64), real(Double), text(String), blob([UInt8])

    /// The key as text, for batch records and messages.
    public var text: String {
        switch self {
        case .null: "NULL"
        case .int(let i): String(i)
        case .real(let d): ValueText.double(d)
        case .text(let s): s
        case .blob(let b): "\\x" + b.map { String(format: "%02x", $0) }.joined()
        }
    }
}

/// What a ledger compaction replaced: `keys` key rows by `ranges` range rows.
public struct LedgerCompaction: Sendable, Equatable {
    public var keys = 0
    public var ranges = 0
    public init(keys: Int = 0, ranges: Int = 0) {
        self.keys = keys
        self.ranges = ranges
    }
}

/// A destination's ranged keys: sorted, disjoint `lo...hi` ranges (a batch of consecutive
/// integer keys, or a run of them compacted by `sluice gc`), searched in memory.
public struct LedgerRanges: Sendable {
    public let ranges: [ClosedRange<Int64>]
    public init(_ ranges: [ClosedRange<Int64>]) { self.ranges = ranges.sorted { $0.lowerBound < $1.lowerBound } }

    public func contains(_ key: LedgerKey) -> Bool {
        guard case .int(let k) = key else { return false }
        var lo = 0, hi = ranges.count
        while lo < hi {  // the first range starting after k
            let mid = (lo + hi) / 2
            if ranges[mid].lowerBound <= k { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 && ranges[lo - 1].contains(k)
    }

    /// The range `keys` are exactly, in order, if they are consecutive integers (a batch of a
    /// dense integer key, recorded as one ledger row instead of one per key).
    public static func consecutive(_ keys: [LedgerKey]) -> ClosedRange<Int64>? {
        guard case .int(let lo)? = keys.first, case .int(let hi)? = keys.last, hi >= lo,
              hi.subtractingReportingOverflow(lo) == (Int64(keys.count - 1), false) else { return nil }
        for (i, k) in keys.enumerated() {
            guard case .int(let v) = k, v == lo + Int64(i) else { return nil }
        }
        return lo...hi
    }

    /// Row hashes as a range row keeps them: 8 bytes each, big-endian.
    public static func packed(_ hashes: [Int64]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: hashes.count * 8) { out, n in
            let raw = UnsafeMutableRawBufferPointer(out)
            for (i, h) in hashes.enumerated() { raw.storeBytes(of: h.bigEndian, toByteOffset: i * 8, as: Int64.self) }
            n = hashes.count * 8
        }
    }

    /// One hash of a range row's packed hashes (8 bytes); nil for another length.
    public static func hash<C: Collection<UInt8>>(_ bytes: C) -> Int64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    /// Whether a `--resend-changed` scan skips a row hashing to `hash`, given its key's ledger
    /// row hash (planned again most lately; nil: none) and else its range's 8 packed bytes
    /// (nil: in no range; any other length: a range compacted by `gc`, sent and unchanged).
    public static func unchanged(_ hash: Int64, row: Int64?, range: UnsafeRawBufferPointer?) -> Bool {
        if let row { return row == hash }
        guard let range else { return false }
        return Self.hash(range).map { $0 == hash } ?? true
    }

    /// `keys` as delivered-keys rows, merged with the ranges' keys of batches after `batch`.
    public static func merge(_ keys: [(batch: Int64, key: String)], ranges: [(batch: Int64, range: ClosedRange<Int64>)]) -> [(batch: Int64, key: String)] {
        guard !ranges.isEmpty else { return keys }
        var out = keys
        for r in ranges { for k in r.range { out.append((r.batch, String(k))) } }
        out.sort { ($0.batch, Int64($0.key) ?? .max, $0.key) < ($1.batch, Int64($1.key) ?? .max, $1.key) }
        return out
    }
}

/// What an export reads: a table or a read-only query, an optional filter (a SQL boolean
/// expression over its columns), and the key column that orders and identifies its rows.
public struct ExportSource: Sendable, Equatable {
    public var table: String?
    public var query: String?
    public var filter: String?
    public var key: String

    public init(table: String? = nil, query: String? = nil, filter: String? = nil, key: String) {
        self.table = table
        self.query = query
        self.filter = filter
        self.key = key
    }

    /// Checks the shape (one of table or query) and the identifiers.
    public func validate() throws(SluiceError) {
        guard (table == nil) != (query == nil) else { throw SluiceError(.invalidArgument, "an export reads either a table or a query (not both, not neither)") }
        if let table { try SQLIdentifier.validate(table) }
        try SQLIdentifier.validate(key)
        if let query, query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw SluiceError(.invalidArgument, "the export query is empty") }
        if let filter, filter.contains(";") { throw SluiceError(.invalidArgument, "the export filter is one SQL expression (no ';')") }
    }

    /// For messages: the table, or "the query".
    public var label: String { table ?? "the export query" }
}

/// Up to one batch of rows still to send: the rows, their keys (as the ledger stores them)
/// and a hash of each row's values (so `--resend-changed` can tell which rows changed).
public struct ExportPage: Sendable {
    public var batch: RecordBatch
    public var keys: [LedgerKey]
    public init(batch: RecordBatch, keys: [LedgerKey], hashes: [Int64]) {
        self.batch = batch
        self.keys = keys
        self.hashes = hashes
    }
    public var hashes: [Int64]
}

/// Rows still to send, read a page at a time in key order.
public protocol ExportScan: AnyObject {
    var schema: TableSchema { get }
    /// The next page (at most the scan's page size); nil when every row has been read.
    func next() async throws(SluiceError) -> ExportPage?
    func close()
}

/// The database side of an export: the rows it reads and the delivery ledger kept beside
/// them, so "not yet sent" is an anti-join in one database.
public protocol ExportStore: AnyObject, Sendable {
    /// The small number the key ledger uses for a destination URL.
    func destinationID(_ url: String) async throws(SluiceError) -> Int64
    func nextBatchNumber(_ url: String) async throws(SluiceError) -> Int64
    /// Rows of `source` no batch for `destinationID` carries yet; with `resendChanged`, also
    /// rows whose values changed since the batch that carried them was planned.
    func scan(_ source: ExportSource, destinationID: Int64, resendChanged: Bool, pageSize: Int) async throws(SluiceError) -> any ExportScan
    /// Records a planned batch and the keys (and row hashes) it carries, atomically.
    func insert(_ b: ExportBatch, destinationID: Int64, keys: [LedgerKey], hashes: [Int64]) async throws(SluiceError)
    /// Records a planned batch whose keys are exactly the integers of `range`, in order, as one
    /// range row holding their row hashes (8 bytes each, big-endian), atomically.
    func insert(_ b: ExportBatch, destinationID: Int64, range: ClosedRange<Int64>, hashes: [Int64]) async throws(SluiceError)

    /// Runs `body` as the only exporter of `url` (across processes): two runs at once would
    /// plan the same rows twice. Fails at once, with `.refused`, if another run holds it.
    func exclusive<T: Sendable>(_ url: String, _ body: @Sendable () async throws(SluiceError) -> T) async throws(SluiceError) -> T

    func batches(_ destination: String?, state: BatchState?) async throws(SluiceError) -> [ExportBatch]
    /// Records one attempt's outcome and the batch's new state.
    func record(_ b: ExportBatch, state: BatchState, status: Int?, error: String?, response: String?, latencyMs: Int) async throws(SluiceError)
    /// Puts dead-lettered batches back in the plan with fresh attempts. Returns how many.
    func retryDead(_ destination: String?) async throws(SluiceError) -> Int
    /// The keys (as text) of `url`'s delivered batches numbered after `batch`, in batch and
    /// key order: what a published copy of the ledger has not recorded yet.
    func deliveredKeys(_ url: String, after batch: Int64) async throws(SluiceError) -> [(batch: Int64, key: String)]
    /// Which of `keys` some batch for `destinationID` carries already (as ``LedgerKey/text``):
    /// for a scan of rows that live outside the database (a Delta table).
    func sentKeys(_ destinationID: Int64, _ keys: [LedgerKey]) async throws(SluiceError) -> Set<String>
    /// Whether any batch for `destinationID` carries a key.
    func hasKeys(_ destinationID: Int64) async throws(SluiceError) -> Bool
    /// Replaces the keys of delivered batches that are runs of consecutive integers with one
    /// range per run (`sluice gc`), except for `skipping` destinations (exports that resend
    /// changed rows need each key's row hash). Dry: counts only.
    func compactKeys(skipping: Set<String>, dryRun: Bool) async throws(SluiceError) -> LedgerCompaction
}

extension ExportStore {
    public func batches(_ destination: String?) async throws(SluiceError) -> [ExportBatch] {
        try await batches(destination, state: nil)
    }
}

/// FNV-1a over a row's cells, each preceded by a tag (null, or the value's kind) so that
/// different rows cannot run together into the same bytes.
public struct RowHasher {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    @inline(__always) mutating func byte(_ b: UInt8) {
        h = (h ^ UInt64(b)) &* 0x100_0000_01b3
    }

    public mutating func null() { byte(0) }

    public mutating func int(_ v: Int64) {
        byte(1)
        var x = UInt64(bitPattern: v)
        for _ in 0..<8 { byte(UInt8(truncatingIfNeeded: x)); x >>= 8 }
    }

    public mutating func bytes(_ tag: UInt8, _ p: UnsafeRawBufferPointer) {
        byte(tag)
        int(Int64(p.count))
        for b in p { byte(b) }
    }

    public var value: Int64 { Int64(bitPattern: h) }
}
