import Foundation

/// The primary keys of a load's rows as bytes, for "last row per key" without a database:
/// each key is encoded so that byte order (memcmp) is the order, and byte equality the
/// equality, the database stores it with (integers big-endian with the sign flipped, text
/// and blobs as their bytes, decimals and other text-stored values as the text they bind
/// as), then sorted.
public struct KeyedRows: Sendable {
    public let keyColumns: [Int]
    var bytes: [UInt8] = []
    /// Where row `i`'s key ends in `bytes` (it starts where row `i - 1`'s ends).
    var ends: [Int] = []

    public init(keyColumns: [Int]) { self.keyColumns = keyColumns }

    /// Whether keys of these types encode exactly: floats do not (0.0 and -0.0 are one key
    /// to a database, NaN none).
    public static func supports(_ types: [ColumnType]) -> Bool { !types.contains(.float64) }

    public var count: Int { ends.count }
    /// Bytes held, for memory budgets.
    public var byteCount: Int { bytes.count + ends.count * 8 }

    /// Appends the keys of rows `rows` of `batch`.
    public mutating func append(_ batch: RecordBatch, rows: Range<Int>) {
        ends.reserveCapacity(ends.count + rows.count)
        if keyColumns.count == 1 {
            Self.encode(batch.columns[keyColumns[0]], rows, into: &bytes, ends: &ends)
            return
        }
        // Column by column (one pass each, the column read once), then row by row.
        let parts = keyColumns.map { c in
            var b: [UInt8] = [], e: [Int] = []
            Self.encode(batch.columns[c], rows, into: &b, ends: &e)
            return (bytes: b, ends: e)
        }
        for i in 0..<rows.count {
            for p in parts { bytes.append(contentsOf: p.bytes[(i == 0 ? 0 : p.ends[i - 1])..<p.ends[i]]) }
            ends.append(bytes.count)
        }
    }

    /// Encodes one column's values of `rows`, appending each one's end to `ends`.
    static func encode(_ col: Column, _ rows: Range<Int>, into bytes: inout [UInt8], ends: inout [Int]) {
        for r in rows {
            defer { ends.append(bytes.count) }
            guard col.validity[r] else {
                bytes.append(0)
                continue
            }
            bytes.append(1)
            switch col.type.storage {
            case .int64:
                let v = UInt64(bitPattern: col.ints[r]) ^ (1 << 63)
                for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
            case .float64:  // grouped by bits only: see supports(_:)
                let v = col.doubles[r].bitPattern
                for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
            case .decimal:
                col.decimals[r].write(into: &bytes)  // digits, sign and point: never a 00
                bytes.append(0)
                bytes.append(0)
            case .bytes:
                col.withBytes(at: r) { appendEscaped($0, to: &bytes) }
            }
        }
    }

    /// Variable-length values end with 00 00, and a 00 inside one is written 00 FF: no key
    /// is a prefix of another, and byte order stays the values' order.
    static func appendEscaped(_ v: UnsafeRawBufferPointer, to bytes: inout [UInt8]) {
        if memchr(v.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, 0, v.count) == nil {
            bytes.append(contentsOf: v)
        } else {
            for b in v {
                bytes.append(b)
                if b == 0 { bytes.append(0xFF) }
            }
        }
        bytes.append(0)
        bytes.append(0)
    }

    /// The index of the last row of each key, in key order.
    public func lastPerKey() -> [Int] {
        let n = ends.count
        if n == 0 { return [] }
        var order = Array(0..<n)
        bytes.withUnsafeBufferPointer { b in
            ends.withUnsafeBufferPointer { e in
                func compare(_ i: Int, _ j: Int) -> Int32 {
                    let si = i == 0 ? 0 : e[i - 1], sj = j == 0 ? 0 : e[j - 1]
                    let li = e[i] - si, lj = e[j] - sj
                    let c = memcmp(b.baseAddress! + si, b.baseAddress! + sj, min(li, lj))
                    if c != 0 { return c }
                    return li == lj ? 0 : (li < lj ? -1 : 1)
                }
                order.sort { i, j in
                    let c = compare(i, j)
                    return c != 0 ? c < 0 : i < j
                }
                var out: [Int] = []
                out.reserveCapacity(n)
                for k in 0..<n where k == n - 1 || compare(order[k], order[k + 1]) != 0 { out.append(order[k]) }
                order = out
            }
        }
        return order
    }
}
