/// A fixed-size filter of the keys a load has seen (a blocked Bloom filter): "not seen" is
/// always right, "maybe seen" is sometimes wrong. A sink uses it to send a key's first row
/// straight into an empty table and the rare later rows through its stage, in memory that
/// does not grow with the file.
public struct KeyFilter: Sendable {
    /// One 64-bit word per key, four bits set in it: one cache miss per test.
    var words: [UInt64]
    let mask: Int
    let keys: [Int]
    let types: [ColumnType]

    /// Whether a key of these types can be told apart byte for byte as the database does:
    /// equal values always hash the same. Floats (`-0.0` and `0.0`), decimals (`1.0` and
    /// `1.00`) and JSON documents compare equal in forms that differ in their bytes.
    public static func canFilter(_ types: [ColumnType]) -> Bool {
        !types.isEmpty && types.allSatisfy { t in
            switch t {
            case .int64, .bool, .text, .date, .timestamp, .timestamptz, .time, .uuid, .bytes: true
            case .float64, .decimal, .json: false
            }
        }
    }

    /// - Parameter keys: the key columns' indices in the batches to come.
    /// - Parameter words: the filter's size (a power of two; 2^21 words is 16 MiB and keeps
    ///   10 million keys under a 1% false "maybe").
    public init(schema: TableSchema, words: Int = 1 << 21) {
        precondition(words > 0 && words & (words - 1) == 0, "the filter's size is a power of two")
        self.words = [UInt64](repeating: 0, count: words)
        mask = words - 1
        keys = schema.keyIndices
        types = keys.map { schema.columns[$0].type }
    }

    /// Adds row `r`'s key; returns whether it may have been added before.
    public mutating func insert(_ batch: RecordBatch, row r: Int) -> Bool {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for c in keys {
            let col = batch.columns[c]
            if col.isNull(r) {
                h = Self.mix(h ^ 0xA5A5_A5A5)
            } else if col.type.storage == .bytes {
                h = col.withBytes(at: r) { ByteHash.hash($0, seed: h) }
            } else {
                h = Self.mix(h ^ UInt64(bitPattern: col.ints[r]))
            }
        }
        let w = Int(truncatingIfNeeded: h) & mask
        let bits: UInt64 = (1 << ((h >> 40) & 63)) | (1 << ((h >> 46) & 63)) | (1 << ((h >> 52) & 63)) | (1 << ((h >> 58) & 63))
        let seen = words[w] & bits == bits
        words[w] |= bits
        return seen
    }

    /// A 64-bit finalizer (from MurmurHash3's fmix64).
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var k = x
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }
}
