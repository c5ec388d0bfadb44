import VaporCSQLite
import SluiceCore

/// Binds the rows of a batch to a statement's parameters without copying: text and
/// blobs point into the batch's buffers, and values that SQLite stores as text (dates,
/// timestamps, UUIDs, decimals) are rendered into per-column scratch space.
struct SQLiteBinder {
    enum Kind {
        case int, double, text, blob, decimal, date, timestamp, timestamptz, time, uuid
        init(_ t: ColumnType) {
            switch t {
            case .int64, .bool: self = .int
            case .float64: self = .double
            case .text, .json: self = .text
            case .bytes: self = .blob
            case .decimal: self = .decimal
            case .date: self = .date
            case .timestamp: self = .timestamp
            case .timestamptz: self = .timestamptz
            case .time: self = .time
            case .uuid: self = .uuid
            }
        }
    }

    /// Raw pointers into one column's arrays, valid inside ``withRows``.
    struct ColumnPointers {
        var kind: Kind
        var validity: UnsafePointer<Bool>
        var ints: UnsafePointer<Int64>?
        var doubles: UnsafePointer<Double>?
        var data: UnsafeRawPointer?
        var offsets: UnsafePointer<Int>?
    }

    let kinds: [Kind]
    /// 64 bytes of scratch per column and row of a statement for rendered text values.
    let scratch: UnsafeMutableRawBufferPointer
    var scratchText: [[UInt8]]

    /// `rows`: how many rows one statement binds at once (each needs its own scratch).
    init(types: [ColumnType], rows: Int = 1) {
        kinds = types.map(Kind.init)
        scratch = .allocate(byteCount: 64 * max(1, types.count * rows), alignment: 8)
        scratchText = Array(repeating: [], count: types.count)
    }

    func deallocate() { scratch.deallocate() }

    /// Calls `body` with pointers into every column of `batch`.
    static func withPointers<R>(_ batch: RecordBatch, kinds: [Kind], _ body: ([ColumnPointers]) -> Result<R, SluiceError>) throws(SluiceError) -> R {
        var acc: [ColumnPointers] = []
        acc.reserveCapacity(batch.columns.count)
        return try nest(batch, kinds, 0, &acc, body).get()
    }

    private static func nest<R>(_ batch: RecordBatch, _ kinds: [Kind], _ i: Int, _ acc: inout [ColumnPointers],
                                _ body: ([ColumnPointers]) -> Result<R, SluiceError>) -> Result<R, SluiceError> {
        if i == batch.columns.count { return body(acc) }
        let col = batch.columns[i]
        return col.validity.withUnsafeBufferPointer { v in
            col.ints.withUnsafeBufferPointer { ints in
                col.doubles.withUnsafeBufferPointer { doubles in
                    col.data.withUnsafeBytes { data in
                        col.offsets.withUnsafeBufferPointer { offsets in
                            acc.append(ColumnPointers(kind: kinds[i], validity: v.baseAddress!, ints: ints.baseAddress,
                                                      doubles: doubles.baseAddress, data: data.baseAddress, offsets: offsets.baseAddress))
                            return nest(batch, kinds, i + 1, &acc, body)
                        }
                    }
                }
            }
        }
    }

    /// Binds row `r` of column `c` (described by `p`) to parameter `index`; rendered text
    /// goes to scratch slot `slot` (one per column and statement row; default `c`).
    @inline(__always)
    mutating func bind(_ st: SQLiteStatement, _ index: Int32, _ p: ColumnPointers, column c: Int, row r: Int, decimals: [ExactDecimal], slot: Int? = nil) {
        let slot = slot ?? c
        if !p.validity[r] { st.bindNull(index); return }
        switch p.kind {
        case .int: st.bind(index, int: p.ints![r])
        case .double: st.bind(index, double: p.doubles![r])
        case .text, .blob:
            let start = p.offsets![r], end = p.offsets![r + 1]
            let bytes = UnsafeRawBufferPointer(start: p.data.map { $0 + start }, count: end - start)
            if p.kind == .text { st.bind(index, staticText: bytes) } else { st.bind(index, staticBlob: bytes) }
        case .decimal:
            scratchText[c].removeAll(keepingCapacity: true)
            decimals[r].write(into: &scratchText[c])
            bindScratch(st, index, c, slot: slot)
        case .date:
            scratchText[c].removeAll(keepingCapacity: true)
            ValueText.date(days: p.ints![r], into: &scratchText[c])
            bindScratch(st, index, c, slot: slot)
        case .timestamp, .timestamptz:
            scratchText[c].removeAll(keepingCapacity: true)
            ValueText.timestamp(micros: p.ints![r], utc: p.kind == .timestamptz, into: &scratchText[c])
            bindScratch(st, index, c, slot: slot)
        case .time:
            scratchText[c].removeAll(keepingCapacity: true)
            ValueText.time(micros: p.ints![r], into: &scratchText[c])
            bindScratch(st, index, c, slot: slot)
        case .uuid:
            let start = p.offsets![r]
            scratchText[c].removeAll(keepingCapacity: true)
            ValueText.uuid(UnsafeRawBufferPointer(start: p.data! + start, count: 16), into: &scratchText[c])
            bindScratch(st, index, c, slot: slot)
        }
    }

    /// Copies the rendered text into this column's stable scratch slot and binds it there.
    @inline(__always)
    func bindScratch(_ st: SQLiteStatement, _ index: Int32, _ c: Int, slot s: Int) {
        let slot = UnsafeMutableRawBufferPointer(rebasing: scratch[(s * 64)..<(s * 64 + 64)])
        let n = min(64, scratchText[c].count)
        scratchText[c].withUnsafeBytes { slot.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        st.bind(index, staticText: UnsafeRawBufferPointer(rebasing: slot[0..<n]))
    }
}
