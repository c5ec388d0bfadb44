import SluiceCore

/// Decodes one page's non-null values (any of Parquet's value encodings) straight into a
/// dense ``Column`` of the mapped Sluice type: ints widened, units scaled to microseconds,
/// decimals unscaled, INT96 converted, dictionary indices resolved.
struct ParquetValueDecoder {
    let mapping: ParquetValueMapping
    var indices: [Int32] = []
    var longs: [Int64] = []
    var scratch: [UInt8] = []

    init(mapping: ParquetValueMapping) { self.mapping = mapping }

    static func fail(_ m: String) -> SluiceError { SluiceError(.malformedFile, "Parquet page: \(m)") }

    /// Byte width of one PLAIN value for fixed-width physical types (nil for BYTE_ARRAY).
    var fixedWidth: Int? {
        switch mapping.physical {
        case .boolean: nil
        case .int32, .float: 4
        case .int64, .double: 8
        case .int96: 12
        case .fixedLenByteArray: mapping.fixedLength
        case .byteArray: nil
        }
    }

    mutating func decode(_ encoding: Int32, _ bytes: UnsafeRawBufferPointer, count: Int, dictionary: Column?, into col: inout Column) throws(SluiceError) {
        guard count > 0 else { return }
        switch Parquet.Encoding(rawValue: encoding) {
        case .plain?:
            try plain(bytes, count: count, into: &col)
        case .plainDictionary?, .rleDictionary?:
            guard let dict = dictionary else { throw Self.fail("dictionary-encoded values without a dictionary page") }
            guard bytes.count >= 1 else { throw Self.fail("missing index bit width") }
            let width = Int(bytes[0])
            try ParquetEncoding.decodeHybrid(UnsafeRawBufferPointer(rebasing: bytes[1...]), bitWidth: width, count: count, into: &indices)
            let n = UInt32(dict.count)
            var bad = false
            for i in indices where UInt32(bitPattern: i) >= n { bad = true }
            if bad {
                let i = indices.first { UInt32(bitPattern: $0) >= n }!
                throw Self.fail("dictionary index \(i) is out of range (\(n) entries)")
            }
            indices.withUnsafeBufferPointer { col.append(from: dict, gathering: $0) }
        case .rle? where mapping.physical == .boolean:
            guard bytes.count >= 4 else { throw Self.fail("truncated boolean RLE data") }
            let len = Int(bytes.loadUnaligned(as: UInt32.self).littleEndian)
            guard len <= bytes.count - 4 else { throw Self.fail("boolean RLE length runs past the page") }
            try ParquetEncoding.decodeHybrid(UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + len)]), bitWidth: 1, count: count, into: &indices)
            for v in indices { col.append(int: Int64(v)) }
        case .deltaBinaryPacked? where mapping.physical == .int32 || mapping.physical == .int64:
            try ParquetEncoding.decodeDeltaBinaryPacked(bytes, limit: count, into: &longs)
            guard longs.count == count else { throw Self.fail("DELTA_BINARY_PACKED holds \(longs.count) values, expected \(count)") }
            for v in longs {
                try appendInteger(mapping.physical == .int32 ? Int64(Int32(truncatingIfNeeded: v)) : v, into: &col)
            }
        case .deltaLengthByteArray? where mapping.physical == .byteArray:
            let used = try ParquetEncoding.decodeDeltaBinaryPacked(bytes, limit: count, into: &longs)
            guard longs.count == count else { throw Self.fail("DELTA_LENGTH_BYTE_ARRAY holds \(longs.count) lengths, expected \(count)") }
            var pos = used
            for len in longs {
                guard len >= 0, len <= Int64(bytes.count - pos) else { throw Self.fail("byte array length \(len) runs past the page") }
                try appendBinary(UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + Int(len))]), into: &col)
                pos += Int(len)
            }
        case .deltaByteArray? where mapping.physical == .byteArray || mapping.physical == .fixedLenByteArray:
            var prefixes: [Int64] = []
            let used = try ParquetEncoding.decodeDeltaBinaryPacked(bytes, limit: count, into: &prefixes)
            guard prefixes.count == count else { throw Self.fail("DELTA_BYTE_ARRAY holds \(prefixes.count) prefixes, expected \(count)") }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[used...])
            let used2 = try ParquetEncoding.decodeDeltaBinaryPacked(rest, limit: count, into: &longs)
            guard longs.count == count else { throw Self.fail("DELTA_BYTE_ARRAY holds \(longs.count) suffixes, expected \(count)") }
            var pos = used + used2
            var previous: [UInt8] = []
            var current: [UInt8] = []
            for k in 0..<count {
                let p = prefixes[k], len = longs[k]
                guard p >= 0, p <= Int64(previous.count) else { throw Self.fail("prefix length \(p) is longer than the previous value") }
                guard len >= 0, len <= Int64(bytes.count - pos) else { throw Self.fail("suffix length \(len) runs past the page") }
                current.removeAll(keepingCapacity: true)
                current.append(contentsOf: previous[0..<Int(p)])
                current.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + Int(len))]))
                pos += Int(len)
                try current.withBytes { (b) throws(SluiceError) in
                    if mapping.physical == .fixedLenByteArray {
                        guard b.count == mapping.fixedLength else { throw Self.fail("fixed-length value of \(b.count) bytes") }
                        try appendFixed(b.baseAddress!, into: &col)
                    } else {
                        try appendBinary(b, into: &col)
                    }
                }
                swap(&previous, &current)
            }
        case .byteStreamSplit?:
            guard let k = fixedWidth, mapping.physical != .int96 else { throw Self.fail("BYTE_STREAM_SPLIT on \(mapping.physical)") }
            guard count <= bytes.count / k else { throw Self.fail("BYTE_STREAM_SPLIT data is shorter than \(count) values") }
            let streams = bytes.count / k
            scratch.removeAll(keepingCapacity: true)
            scratch.reserveCapacity(count * k)
            for v in 0..<count { for s in 0..<k { scratch.append(bytes[s * streams + v]) } }
            let copy = scratch
            try copy.withBytes { (b) throws(SluiceError) in try plain(b, count: count, into: &col) }
        default:
            throw SluiceError(.unsupported, "Parquet encoding \(encoding) for \(mapping.physical) values is not supported")
        }
    }

    /// PLAIN values.
    mutating func plain(_ bytes: UnsafeRawBufferPointer, count: Int, into col: inout Column) throws(SluiceError) {
        let p = bytes.baseAddress!
        switch mapping.physical {
        case .boolean:
            guard count <= bytes.count * 8 else { throw Self.fail("\(count) booleans need more than \(bytes.count) bytes") }
            col.ints.reserveCapacity(col.ints.count + count)
            for i in 0..<count { col.append(int: Int64((p.load(fromByteOffset: i >> 3, as: UInt8.self) >> UInt8(i & 7)) & 1)) }
        case .byteArray:
            var pos = 0
            let n = bytes.count
            col.validity.reserveCapacity(col.count + count)
            col.offsets.reserveCapacity(col.offsets.count + count)
            for _ in 0..<count {
                guard pos + 4 <= n else { throw Self.fail("byte array value runs past the page") }
                let len = Int(p.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian)
                pos += 4
                guard len <= n - pos else { throw Self.fail("byte array length \(len) runs past the page") }
                try appendBinary(UnsafeRawBufferPointer(start: p + pos, count: len), into: &col)
                pos += len
            }
        default:
            let w = fixedWidth!
            guard count <= bytes.count / w else { throw Self.fail("\(count) values of \(w) bytes need more than \(bytes.count) bytes") }
            switch mapping.kind {
            case .int64, .timeMicros64, .timestampMicros:
                col.validity.append(contentsOf: repeatElement(true, count: count))
                let start = col.ints.count
                col.ints.append(contentsOf: repeatElement(0, count: count))
                col.ints.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: start * 8).copyMemory(from: p, byteCount: count * 8) }
            case .double:
                col.validity.append(contentsOf: repeatElement(true, count: count))
                let start = col.doubles.count
                col.doubles.append(contentsOf: repeatElement(0, count: count))
                col.doubles.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: start * 8).copyMemory(from: p, byteCount: count * 8) }
            case .int32, .date32:
                col.validity.append(contentsOf: repeatElement(true, count: count))
                col.ints.reserveCapacity(col.ints.count + count)
                for i in 0..<count { col.ints.append(Int64(Int32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))) }
            case .float32:
                col.validity.append(contentsOf: repeatElement(true, count: count))
                col.doubles.reserveCapacity(col.doubles.count + count)
                for i in 0..<count { col.doubles.append(Double(Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))) }
            default:
                for i in 0..<count { try appendFixed(p + i * w, into: &col) }
            }
        }
    }

    /// One fixed-width physical value (INT32/INT64/INT96/FLOAT/DOUBLE/FIXED_LEN_BYTE_ARRAY).
    @inline(__always)
    mutating func appendFixed(_ p: UnsafeRawPointer, into col: inout Column) throws(SluiceError) {
        switch mapping.physical {
        case .int32: try appendInteger(Int64(Int32(littleEndian: p.loadUnaligned(as: Int32.self))), into: &col)
        case .int64: try appendInteger(Int64(littleEndian: p.loadUnaligned(as: Int64.self)), into: &col)
        case .float: col.append(double: Double(Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))))
        case .double: col.append(double: Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))))
        case .int96:
            let nanos = Int64(UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) & 0x7FFF_FFFF_FFFF_FFFF)
            let julian = Int64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            let (day, o1) = (julian - 2_440_588).multipliedReportingOverflow(by: 86_400_000_000)
            let (t, o2) = day.addingReportingOverflow(nanos / 1000)
            guard !o1 && !o2 else { throw Self.fail("INT96 timestamp (day \(julian)) is out of range") }
            col.append(int: t)
        case .fixedLenByteArray:
            try appendBinary(UnsafeRawBufferPointer(start: p, count: mapping.fixedLength), into: &col)
        case .boolean, .byteArray:
            throw Self.fail("not a fixed-width type")
        }
    }

    /// One INT32/INT64 physical value, by the column's logical type.
    @inline(__always)
    func appendInteger(_ v: Int64, into col: inout Column) throws(SluiceError) {
        switch mapping.kind {
        case .int32, .int64, .date32, .timestampMicros: col.append(int: v)
        case .uint32: col.append(int: Int64(UInt32(truncatingIfNeeded: v)))
        case .uint64AsDecimal: col.append(decimal: ExactDecimal(significand: Int128(UInt64(bitPattern: v)), scale: 0))
        case .timeMillis32: col.append(int: try Self.timeOfDay(v * 1000))
        case .timeMicros64: col.append(int: try Self.timeOfDay(v))
        case .timeNanos64: col.append(int: try Self.timeOfDay(v / 1000))
        case .timestampMillis:
            let (m, o) = v.multipliedReportingOverflow(by: 1000)
            guard !o else { throw Self.fail("timestamp \(v) ms is out of range") }
            col.append(int: m)
        case .timestampNanos:
            col.append(int: v >= 0 ? v / 1000 : (v - 999) / 1000)  // floor to microseconds
        case .decimalInt32(let s), .decimalInt64(let s): col.append(decimal: try decimal(Int128(v), scale: s))
        default: throw Self.fail("integer values for a \(mapping.type) column")
        }
    }

    /// A time of day in microseconds, checked to lie within one day.
    static func timeOfDay(_ micros: Int64) throws(SluiceError) -> Int64 {
        guard micros >= 0 && micros <= 86_400_000_000 else { throw fail("time of day \(micros) µs is outside 00:00–24:00") }
        return micros
    }

    /// A decimal value, checked against the column's precision.
    func decimal(_ v: Int128, scale: Int) throws(SluiceError) -> ExactDecimal {
        if case .decimal(let p, _) = mapping.type, v.magnitude > Self.maxMagnitude(precision: p) {
            throw Self.fail("decimal value \(v) has more than \(p) digits")
        }
        return ExactDecimal(significand: v, scale: Int16(scale))
    }

    static func maxMagnitude(precision p: Int) -> UInt128 {
        var m: UInt128 = 1
        for _ in 0..<min(p, 38) { m *= 10 }
        return m - 1
    }

    /// One variable-length (or fixed-length) binary value, by the column's logical type.
    @inline(__always)
    func appendBinary(_ b: UnsafeRawBufferPointer, into col: inout Column) throws(SluiceError) {
        switch mapping.kind {
        case .string, .json, .binary:
            col.append(bytes: b)
        case .uuid:
            guard b.count == 16 else { throw Self.fail("UUID of \(b.count) bytes") }
            col.append(bytes: b)
        case .float16:
            guard b.count == 2 else { throw Self.fail("FLOAT16 of \(b.count) bytes") }
            col.append(double: Self.halfToDouble(UInt16(b[0]) | UInt16(b[1]) << 8))
        case .decimalBinary(let s):
            guard let v = Self.bigEndianInt128(b) else { throw Self.fail("decimal of \(b.count) bytes does not fit 128 bits") }
            col.append(decimal: try decimal(v, scale: s))
        case .decimalBinaryAsText(let s):
            guard b.count <= 128 else { throw Self.fail("decimal of \(b.count) bytes is longer than 128") }
            col.append(bytes: Array(Self.decimalText(b, scale: s).utf8))
        default:
            throw Self.fail("binary values for a \(mapping.type) column")
        }
    }

    /// Two's-complement big-endian bytes as an Int128, if they fit.
    static func bigEndianInt128(_ b: UnsafeRawBufferPointer) -> Int128? {
        if b.isEmpty { return 0 }
        let negative = b[0] & 0x80 != 0
        if b.count > 16 {
            // Leading bytes beyond 16 must only extend the sign.
            let fill: UInt8 = negative ? 0xFF : 0
            for i in 0..<(b.count - 16) where b[i] != fill { return nil }
            if (b[b.count - 16] & 0x80 != 0) != negative { return nil }
        }
        var u: UInt128 = negative ? ~0 : 0
        for byte in b.suffix(16) { u = u << 8 | UInt128(byte) }
        return Int128(bitPattern: u)
    }

    /// Decimal text of an arbitrarily long two's-complement big-endian unscaled value.
    static func decimalText(_ b: UnsafeRawBufferPointer, scale: Int) -> String {
        var bytes = Array(b)
        let negative = (bytes.first ?? 0) & 0x80 != 0
        if negative {
            // Two's complement negate.
            var carry = true
            for i in stride(from: bytes.count - 1, through: 0, by: -1) {
                bytes[i] = ~bytes[i]
                if carry { bytes[i] &+= 1; carry = bytes[i] == 0 }
            }
        }
        var digits: [UInt8] = []
        while bytes.contains(where: { $0 != 0 }) {
            var rem = 0
            for i in bytes.indices {
                let cur = rem << 8 | Int(bytes[i])
                bytes[i] = UInt8(cur / 10)
                rem = cur % 10
            }
            digits.append(UInt8(48 + rem))
        }
        while digits.count <= scale { digits.append(48) }
        var text = String(decoding: digits.reversed(), as: UTF8.self)
        if scale > 0 { text.insert(".", at: text.index(text.endIndex, offsetBy: -scale)) }
        return negative ? "-" + text : text
    }

    /// IEEE half-precision to Double.
    static func halfToDouble(_ h: UInt16) -> Double {
        let sign: Double = h & 0x8000 != 0 ? -1 : 1
        let exp = Int((h >> 10) & 0x1F)
        let frac = Double(h & 0x3FF)
        switch exp {
        case 0: return sign * frac * 0x1p-24
        case 31: return frac == 0 ? sign * .infinity : .nan
        default: return sign * (1 + frac / 1024) * Double(sign: .plus, exponent: exp - 15, significand: 1)
        }
    }
}
