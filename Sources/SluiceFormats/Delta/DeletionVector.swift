public import SluiceCore

/// Z85 (ZeroMQ's Base85), the encoding of inline deletion vectors and of the UUIDs that
/// name deletion-vector files.
public enum Z85 {
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
    static let decodeTable: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// The bytes of `text`, whose length must be a multiple of 5 (4 bytes per 5 characters).
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 5 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 5 * 4)
        var i = 0
        while i < chars.count {
            var v: UInt64 = 0
            for k in 0..<5 {
                let d = decodeTable[Int(chars[i + k])]
                if d == 0xFF { return nil }
                v = v * 85 + UInt64(d)
            }
            guard v <= UInt64(UInt32.max) else { return nil }
            out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
            i += 5
        }
        return out
    }
}

/// A deletion vector: the sorted row positions (from 0) a logical file no longer has.
public struct DeletionVector: Sendable, Equatable {
    public var rows: [UInt64]

    public init(rows: [UInt64]) { self.rows = rows }

    /// Delta's magic number before the 64-bit portable Roaring bitmap.
    static let magic: UInt32 = 1_681_511_377

    /// Decodes Delta's serialization: the magic number (little endian), then a 64-bit Roaring
    /// bitmap in the portable format (buckets of 32-bit Roaring bitmaps keyed by the high bits).
    /// Decoding stops with an error past `maxRows` rows (the log's cardinality), so a
    /// hostile bitmap cannot claim billions.
    public init(serialized b: [UInt8], maxRows: Int64 = Int64(Int32.max)) throws(SluiceError) {
        var r = LittleEndianReader(bytes: b)
        guard try r.u32() == Self.magic else { throw SluiceError(.malformedFile, "a deletion vector does not start with Delta's magic number") }
        let buckets = try r.u64()
        guard buckets <= UInt64(b.count) else { throw SluiceError(.malformedFile, "a deletion vector claims \(buckets) buckets in \(b.count) bytes") }
        var rows: [UInt64] = []
        var lastKey: Int64 = -1
        for _ in 0..<buckets {
            let key = try r.u32()
            guard Int64(key) > lastKey else { throw SluiceError(.malformedFile, "a deletion vector's buckets are not in ascending order") }
            lastKey = Int64(key)
            try Self.readRoaring32(&r) { (v: UInt32) throws(SluiceError) in
                guard rows.count < maxRows else { throw SluiceError(.malformedFile, "a deletion vector holds more rows than the log says (\(maxRows))") }
                rows.append(UInt64(key) << 32 | UInt64(v))
            }
        }
        self.rows = rows
    }

    static let serialCookieNoRun: UInt32 = 12346
    static let serialCookie: UInt32 = 12347

    /// One 32-bit Roaring bitmap in the standard serialization, values in ascending order.
    static func readRoaring32(_ r: inout LittleEndianReader, _ emit: (UInt32) throws(SluiceError) -> Void) throws(SluiceError) {
        let cookie = try r.u32()
        let count: Int
        var runFlags: [UInt8] = []
        if cookie & 0xFFFF == serialCookie {
            count = Int(cookie >> 16) + 1
            runFlags = try r.bytes((count + 7) / 8)
        } else if cookie == serialCookieNoRun {
            count = Int(try r.u32())
        } else {
            throw SluiceError(.malformedFile, "a deletion vector holds a Roaring bitmap with an unknown cookie \(cookie)")
        }
        guard count <= 65536 else { throw SluiceError(.malformedFile, "a Roaring bitmap claims \(count) containers") }
        var keys: [UInt16] = []
        var cards: [Int] = []
        for _ in 0..<count {
            keys.append(try r.u16())
            cards.append(Int(try r.u16()) + 1)
        }
        // Offsets to each container follow unless the bitmap has runs and few containers;
        // containers are read in order, so the offsets are skipped.
        if runFlags.isEmpty || count >= 4 { _ = try r.bytes(4 * count) }
        for c in 0..<count {
            let high = UInt32(keys[c]) << 16
            let isRun = !runFlags.isEmpty && runFlags[c / 8] & (1 << (c % 8)) != 0
            if isRun {
                let runs = Int(try r.u16())
                for _ in 0..<runs {
                    let start = UInt32(try r.u16())
                    let length = UInt32(try r.u16())
                    guard start + length <= 0xFFFF else { throw SluiceError(.malformedFile, "a Roaring run passes the end of its container") }
                    for v in start...(start + length) { try emit(high | v) }
                }
            } else if cards[c] > 4096 {
                let words = try r.bytes(8192)
                for w in 0..<1024 {
                    var bits: UInt64 = 0
                    for k in 0..<8 { bits |= UInt64(words[w * 8 + k]) << (8 * k) }
                    while bits != 0 {
                        let t = UInt32(bits.trailingZeroBitCount)
                        try emit(high | UInt32(w * 64) + t)
                        bits &= bits - 1
                    }
                }
            } else {
                for _ in 0..<cards[c] { try emit(high | UInt32(try r.u16())) }
            }
        }
    }

    /// Reads a deletion vector stored in a file at `offset`: a big-endian size, the
    /// serialized bitmap and its CRC-32 (the protocol's "Deletion Vector File Storage Format").
    public init(file bytes: [UInt8], expectedSize: Int, maxRows: Int64, fileName: String) throws(SluiceError) {
        let at = SourceLocation(file: fileName)
        guard bytes.count >= 8 else { throw SluiceError(.malformedFile, "the deletion vector is cut short", at: at) }
        let size = Int(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
        guard size == expectedSize, bytes.count >= 8 + size else {
            throw SluiceError(.malformedFile, "the deletion vector's size is \(size) bytes in the file and \(expectedSize) in the log", at: at)
        }
        let data = Array(bytes[4..<(4 + size)])
        let c = bytes[4 + size..<8 + size].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard data.withUnsafeBytes({ Zlib.crc32($0) }) == c else { throw SluiceError(.malformedFile, "the deletion vector's checksum does not match", at: at) }
        do { try self.init(serialized: data, maxRows: maxRows) } catch { throw error.inFile(fileName) }
    }

    /// The canonical UUID text of 16 bytes (`d2c639aa-8816-431a-aaf6-d3fe2512ff61`).
    public static func uuidText(_ b: [UInt8]) -> String {
        let hex = b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    /// The relative path of a `u` (UUID) deletion vector's file: its random prefix as a
    /// folder, then `deletion_vector_<uuid>.bin`.
    public static func relativePath(_ d: DeletionVectorDescriptor) throws(SluiceError) -> String {
        let s = d.pathOrInlineDv
        guard s.utf8.count >= 20, let uuid = Z85.decode(s.suffix(20)), uuid.count == 16 else {
            throw SluiceError(.malformedFile, "a deletion vector names its file with an invalid id '\(SourceLocation.excerpt(s))'")
        }
        let prefix = String(s.dropLast(20))
        return (prefix.isEmpty ? "" : prefix + "/") + "deletion_vector_" + uuidText(uuid) + ".bin"
    }
}

/// Reads little-endian integers from bytes, throwing when they run out.
struct LittleEndianReader {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func bytes(_ n: Int) throws(SluiceError) -> [UInt8] {
        guard n >= 0, n <= bytes.count - i else { throw SluiceError(.malformedFile, "a deletion vector is cut short") }
        defer { i += n }
        return Array(bytes[i..<(i + n)])
    }

    mutating func u16() throws(SluiceError) -> UInt16 {
        let b = try bytes(2)
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }

    mutating func u32() throws(SluiceError) -> UInt32 {
        let b = try bytes(4)
        return b.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }

    mutating func u64() throws(SluiceError) -> UInt64 {
        let b = try bytes(8)
        return b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
    }
}
