import SluiceCore
import SluiceFormats
import SluiceQueue

/// The rows of a Delta table still to send, read straight from the table (no copy in the
/// database): each batch read is checked against the delivery ledger, and a key appears once
/// per page. Rows a change read deletes are not sent (nothing is sent for a delete).
final class DeltaExportScan: ExportScan, @unchecked Sendable {
    let schema: TableSchema
    let reader: DeltaBatchReader
    let keyIndex: Int
    let store: any ExportStore
    let destinationID: Int64
    let pageSize: Int
    /// Rows read and not yet handed over, and whether they were checked since the last page.
    var pending: RecordBatch?
    var pendingChecked = false
    var exhausted = false
    /// Whether the ledger was empty for this receiver when the scan began, and then the keys
    /// handed over so far.
    var ledgerEmpty: Bool?
    var handedInts = Set<Int64>()
    var handedOthers = Set<LedgerKey>()
    /// Integer keys within the range the files' statistics give (up to 2^28 of them): one bit
    /// each, instead of a set entry.
    var handedBits: [UInt64] = []
    var bitsBase: Int64 = 0

    init(reader: DeltaBatchReader, schema: TableSchema, keyIndex: Int, store: any ExportStore, destinationID: Int64, pageSize: Int) {
        self.reader = reader
        self.schema = schema
        self.keyIndex = keyIndex
        self.store = store
        self.destinationID = destinationID
        self.pageSize = pageSize
    }

    func next() async throws(SluiceError) -> ExportPage? {
        if ledgerEmpty == nil {
            ledgerEmpty = !(try await store.hasKeys(destinationID))
            // Sized once from the files' row counts: growing a set of a million keys costs more
            // than filling it.
            if ledgerEmpty == true { sizeHanded() }
        }
        var out = RecordBatch(fields: schema.fields, capacity: pageSize)
        var keys: [LedgerKey] = []
        var hashes: [Int64] = []
        // With an empty ledger every key was checked against those handed over already.
        let dedupe = ledgerEmpty == false
        var inPage = Set<LedgerKey>(minimumCapacity: dedupe ? pageSize : 0)
        // Pages planned since these rows were checked are in the ledger now: ask it again. (With
        // an empty ledger they were checked against the keys handed over, their own included.)
        if !(ledgerEmpty ?? false) { pendingChecked = false }
        while keys.count < pageSize {
            if pending == nil || pending!.isEmpty {
                guard !exhausted, let d = try reader.next() else { exhausted = true; break }
                if let bad = d.rejects.first { throw SluiceError(.invalidInput, "a row of the table does not read as its column: \(bad.message)", at: SourceLocation(file: reader.snapshot.root, line: bad.line)) }
                pending = d.batch
                pendingChecked = false
            }
            if !pendingChecked {
                pending = try await unsent(pending!)
                pendingChecked = true
                if pending!.isEmpty { continue }
            }
            let b = pending!
            var take: [Int32] = []
            var used = 0
            for i in 0..<b.count where keys.count < pageSize {
                used = i + 1
                let k = Self.key(b.columns[keyIndex], i)
                if dedupe, !inPage.insert(k).inserted { continue }  // the same key twice: the first goes
                take.append(Int32(i))
                keys.append(k)
                hashes.append(Self.hash(b, i))
            }
            take.withUnsafeBufferPointer { idx in
                for c in b.columns.indices { out.columns[c].append(from: b.columns[c], gathering: idx) }
            }
            out.lines += take.map { b.lines[Int($0)] }
            out.ops += Array(repeating: .upsert, count: take.count)
            pending = used == b.count ? nil : b.keeping(rows: (used..<b.count).map { Int32($0) })
        }
        return keys.isEmpty ? nil : ExportPage(batch: out, keys: keys, hashes: hashes)
    }

    /// The rows of `b` the ledger does not carry yet, deletes and NULL keys left out. When the
    /// ledger held nothing for this receiver at the start, the keys this scan handed over are
    /// remembered here instead of asked for (the first export of a table, read whole).
    func unsent(_ b: RecordBatch) async throws(SluiceError) -> RecordBatch {
        var candidates: [Int] = []
        var keys: [LedgerKey] = []
        for i in 0..<b.count where b.ops[i] != .delete && !b.columns[keyIndex].isNull(i) {
            candidates.append(i)
            keys.append(Self.key(b.columns[keyIndex], i))
        }
        var keep: [Int32] = []
        keep.reserveCapacity(candidates.count)
        if ledgerEmpty == true {
            for (n, i) in candidates.enumerated() {
                let fresh: Bool
                if case .int(let v) = keys[n] {
                    let at = v &- bitsBase
                    if !handedBits.isEmpty, at >= 0, at < Int64(handedBits.count) * 64 {
                        let (w, b) = (Int(at >> 6), UInt64(1) << UInt64(at & 63))
                        fresh = handedBits[w] & b == 0
                        handedBits[w] |= b
                    } else {
                        fresh = handedInts.insert(v).inserted
                    }
                } else {
                    fresh = handedOthers.insert(keys[n]).inserted
                }
                if fresh { keep.append(Int32(i)) }
            }
        } else {
            let sent = try await store.sentKeys(destinationID, keys)
            for (n, i) in candidates.enumerated() where !sent.contains(keys[n].text) { keep.append(Int32(i)) }
        }
        return b.keeping(rows: keep)
    }

    /// Sizes the keys handed over from the files' statistics: a bitmap over an integer key's
    /// range when it is known and small enough, else a set reserved for the rows counted.
    func sizeHanded() {
        var rows = 0
        var lo = Int64.max, hi = Int64.min, bounded = schema.columns[keyIndex].type == .int64
        let name = reader.snapshot.schema.field(named: schema.columns[keyIndex].name).map { $0.physicalName ?? $0.name } ?? schema.columns[keyIndex].name
        for f in reader.snapshot.files {
            let stats = f.stats.flatMap { try? JSONParser.parse($0) }
            if case .number(let n)? = stats?["numRecords"] { rows += Int(n) ?? 0 }
            if case .number(let a)? = stats?["minValues"]?[name], case .number(let b)? = stats?["maxValues"]?[name], let a = Int64(a), let b = Int64(b) {
                lo = min(lo, a)
                hi = max(hi, b)
            } else {
                bounded = false
            }
        }
        let (span, overflow) = hi.subtractingReportingOverflow(lo)  // bounds read from the files: never trap
        if bounded, !reader.snapshot.files.isEmpty, hi >= lo, !overflow, span < 1 << 28 {
            bitsBase = lo
            handedBits = [UInt64](repeating: 0, count: Int(span >> 6) + 1)
        } else {
            handedInts.reserveCapacity(min(rows, 50_000_000))
        }
    }

    /// A key as the ledger stores it: integers as integers, anything else as its text.
    static func key(_ col: Column, _ i: Int) -> LedgerKey {
        if col.isNull(i) { return .null }
        if col.type == .int64 { return .int(col.ints[i]) }
        return .text(ValueText.render(col, i) ?? "")
    }

    /// A row's hash, for `resend_changed` runs that compare it later.
    static func hash(_ b: RecordBatch, _ i: Int) -> Int64 {
        var h = RowHasher()
        for col in b.columns {
            if col.isNull(i) { h.null(); continue }
            switch col.type {
            case .int64, .bool, .date, .timestamp, .timestamptz, .time: h.int(col.ints[i])
            case .float64: h.int(Int64(bitPattern: col.doubles[i].bitPattern))
            case .decimal: (ValueText.render(col, i) ?? "").utf8.withContiguousStorageIfAvailable { h.bytes(2, UnsafeRawBufferPointer($0)) }
            default: col.withBytes(at: i) { h.bytes(2, $0) }
            }
        }
        return h.value
    }

    func close() {}
}
